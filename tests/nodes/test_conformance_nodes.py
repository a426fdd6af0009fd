"""The NODES' path against the reference outputs: the conformance runner (``vp_core.conformance``) builds ``Sampler``
directly and patches the ID LoRA by hand; here the same fixture models go through the node classes a workflow uses
(Backbone/Branch Loader, Apply Branch, Apply ID LoRA = ``attach.attach_lora``, Encode = ``prepare_inpaint``, the
Any-Length Sampler = ``run_inpaint`` with the node's own settings, Decode) and must match ``expected.safetensors``
of the ``pipeline_window_dpm`` and ``any_length`` cases within 1e-4.
"""
from __future__ import annotations

import json

import folder_paths
import pytest
import torch
from safetensors.torch import load_file

from conformance_fixture import FIXTURE, needs_fixture
from videopainter.nodes import decode, encode, loaders, sampler

from vp_node_helpers import run

ATOL = 1e-4
pytestmark = needs_fixture("cases", "any_length")


@pytest.fixture(scope="module")
def fixture_models():
    """The fixture's folders registered as a ``videopainter`` model folder, loaded through the loader nodes."""
    from videopainter.nodes import paths  # noqa: F401  (registers the folder type, as in ComfyUI)

    folder_paths.add_model_folder_path("videopainter", str(FIXTURE))
    try:
        backbone, vae = run(loaders.VideoPainterBackboneLoader, model_folder="cogvideox", weight_dtype="fp32")
        (branch,) = run(loaders.VideoPainterBranchLoader, branch_folder="branch", weight_dtype="fp32")
        (with_branch,) = run(loaders.VideoPainterApplyBranch, model=backbone, branch=branch)
        (with_id,) = run(loaders.VideoPainterApplyIDLora, model=with_branch,
                         lora_name="videopainter/id_lora/pytorch_lora_weights.safetensors", strength=1.0)
        yield {False: with_branch, True: with_id}, vae
    finally:
        folder_paths.folder_names_and_paths["videopainter"][0].remove(str(FIXTURE))


def max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (tuple(a.shape), tuple(b.shape))
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("case", ["pipeline_window_dpm", "any_length"])
def test_node_path_matches_the_reference(fixture_models, case):
    models, vae = fixture_models
    case_dir = FIXTURE / "cases" / case
    params = json.loads((case_dir / "params.json").read_text())
    inp = load_file(str(case_dir / "inputs.safetensors"))
    frames = params["total_input_frames"] if params["long_video"] else params["num_frames"]
    video = inp["video_u8"][:frames].float() / 255
    masks = inp["masks_u8"][:frames].float() / 255
    first = inp["first_frame_inpainted_u8"][None].float() / 255
    job, *_ = run(encode.VideoPainterEncode, video=video, mask=masks, first_frame=first, width=params["width"],
                  height=params["height"], source_fps=0.0, dilate=params["dilate_size"],
                  first_frame_gt=params["first_frame_gt"])
    expected = load_file(str(case_dir / "expected.safetensors"))
    assert torch.equal(job.pipeline.video, expected["pipeline_video_u8"][:frames])
    assert torch.equal(job.pipeline.masks, expected["pipeline_masks_u8"][:frames])

    latent, _ = run(sampler.VideoPainterSampler, model=models[params["id_lora"]], vae=vae, inpaint=job,
                    positive=[[inp["prompt_embeds"], {}]], negative=[[inp["negative_prompt_embeds"], {}]],
                    seed=params["gen_seed"], steps=params["num_inference_steps"], cfg=params["guidance_scale"],
                    dynamic_cfg=params["use_dynamic_cfg"], scheduler="dpm", window_frames=params["num_frames"],
                    overlap_frames=params["overlap_frames"], window_mode="reference",
                    prev_clip_weight=params["prev_clip_weight"], vae_tiling=params["vae_tiling"])
    (images,) = run(decode.VideoPainterDecode, vae=vae, latent=latent, tiling=params["vae_tiling"])
    errors = {"final_latents": max_err(latent["samples"].permute(0, 2, 1, 3, 4), expected["final_latents"]),
              "frames": max_err(images, expected["frames"])}
    assert all(e <= ATOL for e in errors.values()), errors
    assert images.shape[0] == params["output_frames"]
