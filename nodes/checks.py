"""The one place that checks every FLOAT widget of every node before a prompt runs (``guard_floats``).

The host's own min/max checks are comparisons, which are False for NaN, so a NaN sent through the API passed them
(``cfg`` NaN turned CFG silently off: ``guidance > 1.0`` is False for NaN). ``guard_floats`` gives each node class a
``validate_inputs`` that names its FLOAT inputs explicitly and refuses NaN and infinity naming the input, then runs
the node's own ``validate_inputs`` (if any) with the arguments it declares.

ComfyUI passes to ``validate_inputs`` only the inputs its signature names, and skips its own min/max checks for
exactly those (``execution.validate_inputs``: with ``**kwargs`` it would skip them for every input, combos included),
so the FLOAT inputs' range is checked here too, from the same schema. Values that come from a link are None at
validation time and the host checks no range for them: the node's ``execute`` is wrapped to refuse a non-finite or
out-of-range one there, naming the input (a NaN or huge strength from a Primitive node would otherwise surface only
as NaN latents blamed on fp16 or a checkpoint).
"""
from __future__ import annotations

import functools
import inspect
import math

from comfy_api.v0_0_2 import io


def float_inputs(node_cls) -> dict[str, io.Float.Input]:
    """The node's FLOAT inputs by name (from its schema)."""
    return {i.id: i for i in node_cls.define_schema().inputs if isinstance(i, io.Float.Input)}


def float_error(name: str, value, lo: float | None = None, hi: float | None = None) -> str | None:
    """Why ``value`` cannot be the FLOAT input ``name`` (range ``lo``..``hi``), or None when it can."""
    if value is None:
        return None
    rng = f" between {lo:g} and {hi:g}" if lo is not None and hi is not None else ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return f"{name}: expected a number{rng}; got {value!r}"
    if not math.isfinite(v):
        return (f"{name}: expected a finite number{rng}; got {v!r} (NaN and infinity are not valid widget values: the "
                "host's range check cannot catch them). Send a number")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        return f"{name}: expected a number{rng}; got {v:g}"
    return None


def guard_floats(node_cls) -> None:
    """Give ``node_cls`` a ``validate_inputs`` that checks its FLOAT widgets (see the module docstring), keeping the
    class's own ``validate_inputs`` (it still receives exactly the arguments it names)."""
    floats = float_inputs(node_cls)
    if not floats or node_cls.__dict__.get("_floats_guarded"):
        return
    node_cls._floats_guarded = True
    own = node_cls.__dict__.get("validate_inputs")
    own_func = own.__func__ if isinstance(own, classmethod) else None
    own_params = [p for p in inspect.signature(own_func).parameters][1:] if own_func is not None else []

    def validate_inputs(cls, **values) -> bool | str:
        for name, spec in floats.items():
            if (error := float_error(name, values.get(name), spec.min, spec.max)) is not None:
                return error
        if own_func is None:
            return True
        return own_func(cls, **{k: values[k] for k in own_params if k in values})

    execute = node_cls.__dict__["execute"].__func__

    @functools.wraps(execute)  # the same signature for the host (inspect follows __wrapped__)
    def checked_execute(cls, *args, **kwargs):
        for name, spec in floats.items():  # a float from a link (e.g. a Primitive node) was None at validation
            # time, and the host checks no range for linked values: a 1e30 strength would end as NaN latents
            if (error := float_error(name, kwargs.get(name), spec.min, spec.max)) is not None:
                raise ValueError(error)
        return execute(cls, *args, **kwargs)

    node_cls.execute = classmethod(checked_execute)
    names = list(dict.fromkeys([*own_params, *floats]))
    params = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    # ComfyUI reads which inputs to pass from the signature (inspect.getfullargspec honours __signature__).
    validate_inputs.__signature__ = inspect.Signature(params)
    validate_inputs.__qualname__ = f"{node_cls.__qualname__}.validate_inputs"
    validate_inputs.__doc__ = f"FLOAT inputs {', '.join(floats)} finite and in range; then the node's own checks."
    node_cls.validate_inputs = classmethod(validate_inputs)
