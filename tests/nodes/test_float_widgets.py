"""Issue #26 item 6: every FLOAT widget of every node refuses NaN and infinity in ``validate_inputs``, naming the
input, and keeps its range checked (the host skips its own min/max for inputs that ``validate_inputs`` names)."""
from __future__ import annotations

import inspect
import math

import pytest

from reliability_cases import message as msg
from videopainter.nodes import NODE_LIST, checks, loaders, sampler

FLOATS = [(cls, name, spec) for cls in NODE_LIST for name, spec in checks.float_inputs(cls).items()]


def test_every_node_with_a_float_widget_is_guarded():
    assert len(FLOATS) >= 14  # cfg, prev_clip_weight, strengths, percents, fps, thresholds, opacity, min_fraction
    for cls, name, _ in FLOATS:
        # the host passes exactly the inputs the signature names (and skips its min/max for them)
        args = inspect.getfullargspec(cls.validate_inputs).args
        assert name in args, (cls.__name__, name, args)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_floats_are_refused_naming_the_input(bad):
    for cls, name, spec in FLOATS:
        got = cls.validate_inputs(**{name: bad})
        assert isinstance(got, str) and got.startswith(f"{name}: expected a finite number between {spec.min:g} and "
                                                       f"{spec.max:g}; got {bad!r}"), (cls.__name__, name, got)


def test_cfg_nan_message():
    assert sampler.VideoPainterSampler.validate_inputs(cfg=math.nan) == (
        "cfg: expected a finite number between 0 and 30; got nan (NaN and infinity are not valid widget values: the "
        "host's range check cannot catch them). Send a number")


def test_range_still_checked_and_good_values_pass():
    for cls, name, spec in FLOATS:
        assert cls.validate_inputs(**{name: spec.default}) is True, (cls.__name__, name)
        assert cls.validate_inputs(**{name: spec.max + 1}) == (
            f"{name}: expected a number between {spec.min:g} and {spec.max:g}; got {spec.max + 1:g}")


def test_own_checks_still_run():
    got = loaders.VideoPainterApplyBranch.validate_inputs(start_percent=0.8, end_percent=0.2, strength=1.0)
    assert got.startswith("start_percent, end_percent: expected")


def test_a_linked_nan_strength_is_refused_when_the_node_runs_naming_it(loaded):
    """Issue #26 item 7: a NaN strength from a link (not seen by validate_inputs) used to surface as non-finite
    latents blamed on fp16 overflow or a broken checkpoint; now Apply Branch refuses it, naming 'strength'."""
    with pytest.raises(ValueError) as e:
        loaders.VideoPainterApplyBranch.execute(model=loaded.model, branch=loaded.branch, strength=math.nan,
                                                start_percent=0.0, end_percent=1.0)
    assert str(e.value) == msg("strength_nan_linked")
    with pytest.raises(ValueError) as e:  # a huge linked strength would overflow to NaN latents
        loaders.VideoPainterApplyBranch.execute(model=loaded.model, branch=loaded.branch, strength=1e30,
                                                start_percent=0.0, end_percent=1.0)
    assert str(e.value) == "strength: expected a number between 0 and 2; got 1e+30"
    for cls, name, spec in FLOATS:  # every node's execute checks its floats the same way
        with pytest.raises(ValueError, match=rf"^{name}: expected a finite number between {spec.min:g} and "
                                             rf"{spec.max:g}; got inf "):
            cls.execute(**{name: math.inf})
    (out,) = loaders.VideoPainterApplyBranch.execute(model=loaded.model, branch=loaded.branch, strength=0.5,
                                                     start_percent=0.0, end_percent=1.0).result
    assert out is not loaded.model


def test_guarding_twice_changes_nothing():
    before = (sampler.VideoPainterSampler.validate_inputs, sampler.VideoPainterSampler.execute)
    checks.guard_floats(sampler.VideoPainterSampler)
    assert (sampler.VideoPainterSampler.validate_inputs, sampler.VideoPainterSampler.execute) == before
