"""The streaming path through the nodes (``execute`` called directly, demo weights, 1 step): a VIDEO file in, a
VIDEO out, equal to the IMAGE/MASK path on the same frames; the composite keeps NaN out of the background."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from videopainter.nodes import decode, encode, loaders, sampler, video
from videopainter.vp_core.pipeline import composite

from vp_node_helpers import run, write_ffv1

ID_LORA = "videopainter/VideoPainterID/checkpoints/pytorch_lora_weights.safetensors"
SRC_W, SRC_H, FPS, FRAMES = 112, 72, 16, 40  # source size differs from the working size 80x96: resized per window


def decode_file(path) -> np.ndarray:
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from make_sample_clip import sample_frames

    d = tmp_path_factory.mktemp("stream")
    v, m = sample_frames(FRAMES, SRC_W, SRC_H)
    return v, m, write_ffv1(d / "v.mkv", v, fps=FPS, audio=True), write_ffv1(d / "m.mkv", m, fps=FPS)


class FileVideo:
    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path


def _chain(loaded, model, vid, msk, tmp_path, codec="ffv1"):
    job, frames, hole, fps, _info = run(encode.VideoPainterEncode, video=vid, mask=msk, width=80, height=96, source_fps=0.0
                                 if not isinstance(vid, torch.Tensor) else float(FPS), target_fps=8.0, dilate=5, output_rate="sampled")
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=loaded.vae, inpaint=job, positive=loaded.positive,
                    negative=loaded.negative, seed=7, steps=1, window_frames=17, overlap_frames=1, window_mode="fixed")
    return job, frames, hole, fps, latent


def test_video_in_video_out_equals_the_image_mask_path(loaded, files, tmp_path):
    v, m, vpath, mpath = files
    (model,) = run(loaders.VideoPainterApplyIDLora, model=run(loaders.VideoPainterApplyBranch, model=loaded.model,
                                                               branch=loaded.branch)[0], lora_name=ID_LORA)
    job, frames, hole, fps, latent = _chain(loaded, model, FileVideo(vpath), FileVideo(mpath), tmp_path)
    assert job.streamed and job.frame_count == 20 and fps == 8.0 and frames.shape[0] == 20  # no prompt known: filled
    (gen,) = run(video.VideoPainterDecodeVideo, vae=loaded.vae, latent=latent, codec="ffv1")
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=gen, dilate=4, feather=2, codec="ffv1")
    assert out.get_dimensions() == (SRC_W, SRC_H) and out.get_frame_count() == 20 and out.get_frame_rate() == 8
    out.save_to(str(tmp_path / "out.mp4"))
    got = decode_file(tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4.part").exists()
    with av.open(str(tmp_path / "out.mp4")) as c:
        assert float(c.streams.video[0].average_rate) == 8.0 and len(c.streams.audio) == 1  # the source's audio kept

    images = torch.from_numpy(v).float() / 255.0
    masks = torch.from_numpy(m).float() / 255.0
    ijob, iframes, ihole, _, ilatent = _chain(loaded, model, images, masks, tmp_path)
    assert torch.equal(latent["samples"], ilatent["samples"])
    (decoded,) = run(decode.VideoPainterDecode, vae=loaded.vae, latent=ilatent)
    (pasted,) = run(decode.VideoPainterComposite, original=iframes, generated=decoded, mask=ihole, dilate=4, feather=2)
    want = (pasted * 255).clamp(0, 255).byte().numpy()
    assert got.shape == want.shape == (20, SRC_H, SRC_W, 3)
    assert np.array_equal(got, want)
    # outside the dilated hole the file holds the source frames, bit for bit (FFV1 is lossless)
    grown = composite.dilate_masks(torch.from_numpy(m[::2] > 127).to(torch.uint8) * 255, 2 * (4 + 2 + 5) + 1)
    outside = ~(grown > 0).numpy()
    assert np.array_equal(got[outside], v[::2][outside])


def test_nan_in_generated_frames_never_reaches_the_background():
    original = torch.rand(2, 16, 16, 3)
    mask = torch.zeros(2, 16, 16)
    mask[:, 4:8, 4:8] = 1
    generated = torch.full((2, 16, 16, 3), float("nan"))
    generated[:, 2:10, 2:10] = 0.5  # finite over the pasted region (hole, dilated 1 px, feathered 1 px)
    out = composite.paste(original, generated, mask, dilate=1, feather=1)
    far = torch.ones(16, 16, dtype=torch.bool)
    far[1:11, 1:11] = False
    assert torch.isfinite(out).all() and torch.equal(out[:, far], original[:, far])
    generated[1, 5, 5] = float("inf")
    with pytest.raises(ValueError, match=r"1 NaN or infinite pixels inside the hole in 1 frame\(s\) \(first: frame 11\)"):
        composite.paste(original, generated, mask, dilate=1, feather=1, first_index=10)
