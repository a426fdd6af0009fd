"""The sampler's progress bar carries latent previews when ComfyUI's previews are on, and none when they are off."""
from __future__ import annotations

import comfy.utils
import latent_preview
import pytest

from vp_node_helpers import CLIP_FPS, run  # not "conftest": several test dirs have one


@pytest.mark.parametrize("method", [latent_preview.LatentPreviewMethod.Latent2RGB, latent_preview.LatentPreviewMethod.NoPreviews])
def test_progress_bar_previews(loaded, clip_tensors, monkeypatch, method):
    from videopainter.nodes import encode, loaders, sampler

    monkeypatch.setattr(latent_preview.args, "preview_method", method)
    updates = []
    monkeypatch.setattr(comfy.utils, "PROGRESS_BAR_HOOK", lambda value, total, preview, node_id=None: updates.append((value, total, preview)))
    video, mask = clip_tensors
    (model,) = run(loaders.VideoPainterApplyBranch, model=loaded.model, branch=loaded.branch)
    job = run(encode.VideoPainterEncode, video=video, mask=mask, width=80, height=96, source_fps=CLIP_FPS)[0]
    run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=job, positive=loaded.positive,
        negative=loaded.negative, steps=1, window_frames=17)
    assert [u[:2] for u in updates] == [(1, 2), (2, 2)]  # one bar over 2 windows x 1 step
    previews = [u[2] for u in updates]
    if method == latent_preview.LatentPreviewMethod.NoPreviews:
        assert previews == [None, None]
    else:
        assert all(p is not None and p[0] == "JPEG" and p[1].size == (10, 12) for p in previews)
