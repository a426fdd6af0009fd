"""The first-frame helper's mask growth is the reference's ``cv2.dilate(mask, np.ones((d, d)))``, pixel for pixel,
checked against an independent implementation (scipy's ``binary_dilation`` with the anchor set through ``origin``),
and frame 0 of a core VIDEO is read without decoding the rest."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from scipy import ndimage

from videopainter.vp_core.pipeline import first_frame, preprocess


def cv2_dilate(mask: np.ndarray, d: int, anchor_shift: int = 0) -> np.ndarray:
    """``cv2.dilate(mask, np.ones((d, d)))``: OpenCV anchors the kernel at its centre ``(d//2, d//2)``, so output
    (y, x) is the max of input rows ``y - d//2 ... y + d - 1 - d//2`` (same for columns). In scipy's terms the
    reflected kernel is centred at ``d//2 + origin``: for odd d no shift; for even d ``origin = -1`` (scipy's
    default centre for even sizes is the other one of the two middle cells). ``anchor_shift`` moves it (a wrong
    anchor)."""
    origin = (-1 if d % 2 == 0 else 0) + anchor_shift
    return ndimage.binary_dilation(mask > 0, structure=np.ones((d, d), bool), origin=origin)


def random_masks(seed: int, h: int = 161, w: int = 147) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.random((h, w)) > 0.9995
    m[20:24, 5:9] = True
    m[0, 0] = m[-1, -1] = m[0, -1] = True  # edges and corners
    return m


@pytest.mark.parametrize("d", [32, 48, 2, 4, 3, 5, 7, 1])
def test_growth_matches_cv2_dilate_pixel_for_pixel(d):
    for seed in range(3):
        m = random_masks(seed)
        ours = first_frame.first_frame_for_inpainting(torch.zeros(1, *m.shape, 3), torch.from_numpy(m).float()[None], d)
        assert torch.equal(ours.mask[0].bool(), torch.from_numpy(cv2_dilate(m, d))), (d, seed)


@pytest.mark.parametrize("d, shift", [(32, 1), (48, 1), (2, 1), (4, 1), (32, -1), (5, 1), (5, -1)])
def test_the_comparison_fails_with_the_wrong_anchor(d, shift):
    """For even d, shift 1 is the mirrored anchor (16 px up/left, 15 down/right for d = 32), the likely mistake."""
    m = np.zeros((200, 180), bool)
    m[60, 70] = m[61:66, 120:123] = m[0, 0] = True
    ours = preprocess.dilate(torch.from_numpy(m).to(torch.uint8)[None] * 255, d)[0] > 0
    assert not torch.equal(ours, torch.from_numpy(cv2_dilate(m, d, anchor_shift=shift)))


@pytest.mark.parametrize("d, up_left, down_right", [(32, 15, 16), (48, 23, 24), (3, 1, 1), (1, 0, 0)])
def test_one_pixel_grows_like_the_reference_says(d, up_left, down_right):
    m = torch.zeros(1, 101, 101)
    m[0, 50, 50] = 1
    grown = first_frame.first_frame_for_inpainting(torch.zeros(1, 101, 101, 3), m, d).mask[0]
    rows, cols = torch.nonzero(grown, as_tuple=True)
    assert (int(rows.min()), int(rows.max())) == (50 - up_left, 50 + down_right)
    assert (int(cols.min()), int(cols.max())) == (50 - up_left, 50 + down_right)


def test_outputs_frame_0_and_binarises_at_the_threshold():
    video = torch.rand(5, 16, 12, 3)
    mask = torch.zeros(5, 16, 12)
    mask[0, 4, 4], mask[0, 8, 8], mask[1] = 0.6, 0.4, 1.0
    out = first_frame.first_frame_for_inpainting(video, mask, 0, threshold=0.5)
    assert torch.equal(out.image, video[:1])
    assert out.mask.shape == (1, 16, 12) and int(out.mask.sum()) == 1 and out.mask[0, 4, 4] == 1


def test_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match=r"^mask is 10x16 \(WxH\) but video is 12x16"):
        first_frame.first_frame_for_inpainting(torch.rand(2, 16, 12, 3), torch.zeros(2, 16, 10), 32)


class _Video:
    """Stands in for a core VIDEO from a file: only ``get_stream_source`` (what the reader may use)."""

    def __init__(self, path):
        self.path = str(path)

    def get_stream_source(self):
        return self.path

    def get_components(self):  # the whole clip: must not be called
        raise AssertionError("decoded the whole clip")


def _write_clip(path, frames: np.ndarray, fps: int = 8) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264rgb", rate=fps)  # lossless RGB: frame 0 comes back exactly
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "rgb24"
        stream.options = {"qp": "0"}
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


def test_frame_0_of_a_video_is_read_alone(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 32, 48, 3), dtype=np.uint8)
    _write_clip(tmp_path / "clip.mkv", frames)
    mask = np.zeros((12, 32, 48, 3), np.uint8)
    mask[:, 10:14, 20:30, 0] = 255
    _write_clip(tmp_path / "mask.mkv", mask)
    decoded = []
    real = av.VideoFrame.to_ndarray
    monkeypatch.setattr(av.VideoFrame, "to_ndarray", lambda self, *a, **k: decoded.append(1) or real(self, *a, **k))
    out = first_frame.first_frame_for_inpainting(_Video(tmp_path / "clip.mkv"), _Video(tmp_path / "mask.mkv"), 4)
    assert len(decoded) == 2  # one frame of each
    assert torch.equal((out.image[0] * 255).round().to(torch.uint8), torch.from_numpy(frames[0]))
    rows, cols = torch.nonzero(out.mask[0], as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (9, 15, 19, 31)
