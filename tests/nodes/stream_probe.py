"""Run in a fresh process by test_streaming_memory.py: the streaming chain (Encode from VIDEO files -> Sampler ->
Decode to Video -> Composite Video -> save) on the demo weights; prints the process's peak RSS as JSON.

    python tests/nodes/stream_probe.py VIDEO MASK OUT.mp4 [--image-path]

``--image-path`` reads the clip the old way (the whole clip as float32 IMAGE/MASK batches, as Get Video
Components does) to show what the memory test catches.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "scripts"))  # vp_pack, as pytest's pythonpath gives it to the tests
import conftest  # noqa: E402,F401  (tests/conftest.py: ComfyUI importable, the pack registered as 'videopainter')

sys.path.remove(str(HERE.parent))


class FileVideo:
    def __init__(self, path: str):
        self.path = path

    def get_stream_source(self):
        return self.path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("video")
    ap.add_argument("mask")
    ap.add_argument("out")
    ap.add_argument("--image-path", action="store_true")
    a = ap.parse_args()

    import folder_paths
    import torch

    from videopainter.nodes import encode, loaders, paths, sampler, text, video  # noqa: F401
    from videopainter.vp_core.checkpoints.tiny_checkpoints import write_tiny_checkpoints
    from vp_node_helpers import run

    root = Path(tempfile.mkdtemp())
    write_tiny_checkpoints(root / "videopainter")
    folder_paths.add_model_folder_path("videopainter", str(root / "videopainter"))
    model, vae = run(loaders.VideoPainterBackboneLoader, model_folder="CogVideoX-5b-I2V", weight_dtype="fp32")
    (branch,) = run(loaders.VideoPainterBranchLoader, branch_folder="VideoPainter/checkpoints/branch", weight_dtype="fp32")
    (clip,) = run(text.VideoPainterTextEncoderLoader, folder="CogVideoX-5b-I2V", weight_dtype="fp32")
    positive, negative = run(text.VideoPainterTextEncode, clip=clip, prompt="a ball", negative_prompt="", max_text_tokens=16)
    (model,) = run(loaders.VideoPainterApplyBranch, model=model, branch=branch)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    vid, msk = FileVideo(a.video), FileVideo(a.mask)
    if a.image_path:
        from comfy_api.v0_0_2 import InputImpl

        vid = InputImpl.VideoFromFile(a.video).get_components().images
        msk = InputImpl.VideoFromFile(a.mask).get_components().images[..., 0]
    # as in the server: the prompt says no node reads the encoder's frames/hole_mask outputs
    encode.VideoPainterEncode.hidden = SimpleNamespace(prompt={"14": {"inputs": {}}}, unique_id="14")
    job, *_ = encode.VideoPainterEncode.execute(
        video=vid, mask=msk, width=80, height=96, resize_mode="stretch", source_fps=30.0, target_fps=8.0, dilate=32,
        threshold=0.5, first_frame_gt=True).result
    latent, _ = run(sampler.VideoPainterSampler, model=model, vae=vae, inpaint=job, positive=positive, negative=negative,
                    seed=1, steps=1, window_frames=17, overlap_frames=1, window_mode="fixed", prev_clip_weight=0.0)
    (gen,) = run(video.VideoPainterDecodeVideo, vae=vae, latent=latent)
    (out,) = run(video.VideoPainterCompositeVideo, inpaint=job, generated=gen, dilate=16, feather=8, codec="ffv1")
    out.save_to(a.out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_rss": peak, "after_load_rss": base, "frames": job.frame_count,
                      "output_frames": out.get_frame_count(), "output_fps": float(out.get_frame_rate()),
                      "streamed": job.streamed, "torch_threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
