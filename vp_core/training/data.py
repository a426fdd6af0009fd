"""Training data: rows (the reference's CSV layouts through ``evaluation.datasets``, or a plain folder of clips +
mask videos + captions), a disk cache prepared ONCE, and the per-step sample draw.

The cache (``prepare_cache``) holds one safetensors file per clip: the frames resized to the working size (uint8),
the hole masks (uint8, 1 = hole) and the caption's T5 embedding, so neither the video decoder nor T5 is needed while
training (T5 is loaded for the preparation only, never next to the optimizer). Latents are NOT cached: the
reference encodes every step with a fresh posterior sample and a fresh noised first frame, and caching one sample
would change what is trained. Training reads only the frames of the window it draws (``safe_open`` slices).

A bad row (missing file, mask_id absent from its frames, too few frames, unreadable video, missing caption) is
skipped with a log line naming the row and the reason, or stops the run with that message (``on_bad_row``).

Per-step randomness is a pure function of (seed, step, sample index): clip order is one permutation per epoch; a
sample's window, mask transform and noises come from generators seeded with those numbers. So a resumed run and a
run split over several processes draw exactly what a single uninterrupted run draws.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..base import atomic
from ..evaluation import datasets
from .mask_transforms import MaskAugment, maybe_transform
from .step import PixelBatch

log = logging.getLogger(__name__)
INDEX = "index.json"
NEGATIVE = "negative_prompt.safetensors"  # T5 embedding of the empty caption


class BadRow(ValueError):
    """A dataset row that cannot be trained on (the message names the row and the remedy)."""


@dataclass(frozen=True)
class DataConfig:
    height: int = 480
    width: int = 720
    max_num_frames: int = 49
    first_frame_gt: bool = True
    mix_train_ratio: float = 0.0
    augment: MaskAugment = field(default_factory=MaskAugment)
    on_bad_row: str = "skip"  # or "stop"


def load_rows(meta_file_path: str | None = None, instance_data_root: str | None = None, mask_root: str | None = None,
              data_folder: str | None = None) -> list[dict]:
    """Rows of the reference's training CSV (``--meta_file_path`` + ``--instance_data_root``) and/or a plain folder."""
    rows: list[dict] = []
    if meta_file_path:
        if not instance_data_root:
            raise ValueError("--meta_file_path needs --instance_data_root (the folder of the CSV's videos)")
        rows += datasets.vpdata_train_rows(meta_file_path, instance_data_root, mask_root)
    if data_folder:
        rows += datasets.folder_rows(data_folder)
    if not rows:
        raise ValueError("no training clips: pass --meta_file_path/--instance_data_root (the reference's CSV) or "
                         "--data_folder (clips + <name>_mask.mp4 + <name>.txt)")
    return rows


def _caption(row: dict) -> str:
    if "caption_file" in row:
        path = Path(row["caption_file"])
        if not path.is_file():
            raise BadRow(f"caption file {path} does not exist (one <name>.txt per clip)")
        return path.read_text(encoding="utf-8").strip()
    return row.get("caption", "")


def _resize(frames: Tensor, holes: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """Frames bilinear (antialiased, as torchvision's resize the reference uses) and holes nearest, to the working
    size. Masks are kept binary (the reference resizes them bilinear too, which leaves fractional edges)."""
    x = frames.permute(0, 3, 1, 2).float()
    if tuple(x.shape[2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    m = holes[:, None].float()
    if tuple(m.shape[2:]) != (height, width):
        m = F.interpolate(m, size=(height, width), mode="nearest")
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous(), (m[:, 0] > 127).to(torch.uint8)


def _check(row: dict, frames: Tensor, holes: Tensor, cfg: DataConfig) -> None:
    if frames.shape[0] < cfg.max_num_frames:
        raise BadRow(f"too few frames: {frames.shape[0]} after frame-rate sampling, training windows need "
                     f"{cfg.max_num_frames} (--max_num_frames); use a longer clip or a smaller --max_num_frames")
    if not bool(holes.any()):
        what = f"mask_id {row['mask_id']} does not occur in its frames" if "mask_id" in row else "its mask is empty"
        raise BadRow(f"{what}; nothing to inpaint")


def prepare_cache(rows: list[dict], cache_dir: str | Path, cfg: DataConfig,
                  encode_text: Callable[[str], Tensor]) -> dict:
    """Decode, check, resize and embed every row once into ``cache_dir`` (clips already there are kept)."""
    cache_dir = Path(cache_dir)
    kept, skipped = [], []
    for row in rows:
        rid = row["row_id"]
        path = cache_dir / "clips" / f"{rid}.safetensors"
        if not path.is_file():
            try:
                caption = _caption(row)
                frames, holes = datasets.read_clip(row, max_frames=None)
                frames, holes = _resize(frames, holes, cfg.height, cfg.width)
                _check(row, frames, holes, cfg)
                embeds = encode_text(caption).detach().float().cpu()
                embeds = embeds.reshape(-1, embeds.shape[-1])  # [L, D]
            except (ValueError, OSError) as e:  # BadRow, reader errors (missing file, unreadable video: av errors are OSError)
                msg = f"dataset row {rid} ({row.get('name', '')}): {e}"
                if cfg.on_bad_row == "stop":
                    raise BadRow(msg + " (--on_bad_row skip would skip it)") from e
                log.warning("skipping %s", msg)
                skipped.append({"row_id": rid, "reason": str(e)})
                continue
            with atomic.atomic_path(path) as tmp:
                save_file({"video": frames, "masks": holes, "prompt_embeds": embeds.contiguous()}, str(tmp))
        kept.append(rid)
    if not kept:
        raise BadRow(f"no usable clip among {len(rows)} rows ({len(skipped)} skipped; see the log lines above)")
    if not (cache_dir / NEGATIVE).is_file():  # the empty caption (validation renders' negative prompt)
        with atomic.atomic_path(cache_dir / NEGATIVE) as tmp:
            emb = encode_text("").detach().float().cpu()
            save_file({"prompt_embeds": emb.reshape(-1, emb.shape[-1]).contiguous()}, str(tmp))
    index = {"clips": kept, "skipped": skipped, "height": cfg.height, "width": cfg.width}
    atomic.write_text(cache_dir / INDEX, json.dumps(index, indent=1))
    log.info("training cache %s: %d clips (%d rows skipped)", cache_dir, len(kept), len(skipped))
    return index


class ClipStore:
    """The cache as the training loop sees it: clip ``i``'s window ``[start, start + n)`` read on demand."""

    def __init__(self, cache_dir: str | Path):
        self.dir = Path(cache_dir)
        index_path = self.dir / INDEX
        if not index_path.is_file():
            raise ValueError(f"{self.dir} is not a prepared training cache (no {INDEX}); run the prepare step first")
        self.index = json.loads(index_path.read_text())
        self.clips: list[str] = self.index["clips"]

    def __len__(self) -> int:
        return len(self.clips)

    def length(self, i: int) -> int:
        with safe_open(str(self.dir / "clips" / f"{self.clips[i]}.safetensors"), "pt") as f:
            return f.get_slice("video").get_shape()[0]

    def read(self, i: int, start: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
        with safe_open(str(self.dir / "clips" / f"{self.clips[i]}.safetensors"), "pt") as f:
            return f.get_slice("video")[start:start + n], f.get_slice("masks")[start:start + n], f.get_tensor("prompt_embeds")


def read_negative(cache_dir: str | Path) -> Tensor:
    """The empty caption's embedding ``[L, D]`` that ``prepare_cache`` stores (the validation renders' negative)."""
    path = Path(cache_dir) / NEGATIVE
    if not path.is_file():
        raise ValueError(f"{cache_dir}: no {NEGATIVE} (a cache prepared by an older version); delete "
                         f"{Path(cache_dir) / INDEX} and run again to prepare it")
    return load_file(str(path))["prompt_embeds"]


def sample_seed(seed: int, step: int, index: int, stream: int) -> int:
    """A 63-bit seed for (run seed, step, global sample index, stream) (numpy's SeedSequence mixing)."""
    return int(np.random.SeedSequence([seed, step, index, stream]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def clip_for(seed: int, global_index: int, n_clips: int) -> int:
    """The clip of the ``global_index``-th sample of the run: one permutation of the clips per epoch."""
    epoch, pos = divmod(global_index, n_clips)
    return int(np.random.default_rng([seed, epoch]).permutation(n_clips)[pos])


def make_sample(store: ClipStore, clip: int, rng: np.random.Generator, cfg: DataConfig, single_frame: bool):
    """One training sample as the reference's collate function forms it: a random window of ``max_num_frames``,
    the random mask transform, masked video = video x (1 - mask), then either the first frame only
    (``mix_train_ratio``, image training) or first_frame_gt (frame 0 unmasked, its mask zero)."""
    n = cfg.max_num_frames
    total = store.length(clip)
    start = int(rng.integers(0, total - n + 1))
    video, masks, embeds = store.read(clip, start, n)
    masks = torch.from_numpy(maybe_transform(masks.numpy(), cfg.augment, rng)).float()
    pix = video.float().permute(0, 3, 1, 2) / 127.5 - 1.0  # [T, 3, H, W]
    m = masks[:, None]
    masked = pix * (1 - m) + (-1.0) * m  # hole pixels black (0 in uint8 = -1), as video*(1-mask) before normalising
    if single_frame:
        pix, masked, m = pix[:1], masked[:1], m[:1]
    elif cfg.first_frame_gt:
        masked[0] = pix[0]
        m[0] = 0
    return pix, masked, m, embeds


def collate(samples: list) -> PixelBatch:
    pix, masked, m, emb = zip(*samples)
    return PixelBatch(torch.stack(pix), torch.stack(masked), torch.stack(m), torch.stack(emb))
