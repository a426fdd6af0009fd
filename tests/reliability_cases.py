"""The reliability matrix of issues #9 and #16 as data: each bad input, what the user gets, and the exact message.

The tests (``tests/e2e/test_reliability.py`` through the real server, ``tests/nodes/test_reliability_nodes.py``
with ``execute`` called directly) assert these messages verbatim, and ``tests/e2e/README.md`` shows them as a
table that a test keeps identical to :func:`readme_table`. After changing a message here, regenerate the table:

    .venv/bin/python tests/reliability_cases.py      # rewrites the table in tests/e2e/README.md

``{models}`` stands for the server's model folder (``<models>`` in the README), ``{input}`` for its input folder.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parent / "e2e" / "README.md"
BEGIN, END = "<!-- reliability-table:begin -->", "<!-- reliability-table:end -->"

# The oldest tested host whose server refuses a combo value outside the input's options ("Value not in list",
# V3 combo validation); 0.3.75 passes such a value to the node. Tested hosts: scripts/quickstart.sh, scripts/host027.sh.
HOST_CHECKS_COMBOS = (0, 27, 0)
HOST_CHECKS_COMBOS_TEXT = ">= 0.2x"  # how the README says it
NOT_IN_LIST = "Value not in list"

SAMPLER_OOM_DETAIL = "CUDA out of memory. Tried to allocate 20.00 GiB"
DECODE_OOM_DETAIL = "CUDA out of memory. Tried to allocate 4.00 GiB"
STATE_REMEDY = ("use a file written by 'VideoPainter Save ID State' or a sampler's autosave (output/videopainter/), "
                "copied unchanged into the input folder, or save the state again")
SAMPLER_NAN_CAUSES = (
    "Likely causes: fp16 overflow (CogVideoX-5B overflows in fp16: load the backbone with weight_dtype bf16), or a "
    "broken checkpoint with NaN weights (the backbone, the branch or a LoRA: download it again)"
)
DECODE_NAN_CAUSES = (
    "Likely causes: the VAE overflowing in fp16 (load the backbone with weight_dtype bf16), a broken VAE checkpoint "
    "(download it again), or latents that already held NaN (check the node that produced them)"
)


@dataclass(frozen=True)
class Row:
    """One case of the matrix.

    Parameters:
        key: how the tests look the row up.
        case: the case number of issue #9 (1-15, or "+" for the extra checks), or "16.N" for item N of issue #16.
        what: the input, in a few words.
        outcome: "error" (the node fails, the prompt stops), "refused (HTTP 400)" (the graph fails validation
            before anything runs), "warning" (logged, the prompt completes) or "completes".
        message: the exact user-facing text; empty when there is none (a plain completion).
        where: "e2e" (through the server) or "node" (``execute`` called directly, where the server cannot be made
            to produce the input).
        host_refusal: on hosts that check combo values themselves (:data:`HOST_CHECKS_COMBOS` and newer), the
            server refuses the value with HTTP 400 before the node runs; this is the start of its error line (the
            input name and the value follow). Empty when the case reaches the node on every host.
    """

    key: str
    case: str
    what: str
    outcome: str
    message: str = ""
    where: str = "e2e"
    host_refusal: str = ""

    def text(self, models: str | Path = "{models}", input: str | Path = "{input}") -> str:  # noqa: A002
        return self.message.replace("{models}", str(models)).replace("{input}", str(input))


ROWS: tuple[Row, ...] = (
    Row("mask_frames", "1", "mask with 40 frames, video with 17", "error",
        "mask has 40 frames but video has 17: give one mask per frame or a single mask"),
    Row("mask_single", "1", "one mask for a 17-frame video", "completes (the mask is used for every frame; 17 frames out)"),
    Row("mask_size", "2", "mask 48x40, video 96x80 (policy: no silent resize)", "error",
        "mask is 48x40 (WxH) but video is 96x80: resize the mask to the video size before this node "
        "(e.g. Convert Mask to Image -> Upscale Image -> Convert Image to Mask)"),
    Row("mask_empty", "3", "empty mask (SolidMask 0)", "warning, completes",
        "the mask is empty: there is nothing to fill; the video is only re-encoded"),
    Row("mask_full", "3", "full mask (SolidMask 1)", "completes (no first frame: frame 0 is filled too)"),
    Row("mask_soft", "4", "soft mask (blurred 3-channel mask video through Convert Image to Mask)",
        "completes (values above `threshold` are holes)"),
    Row("mask_image", "4", "IMAGE wired straight into the mask input", "refused (HTTP 400)",
        "Return type mismatch between linked nodes: mask, received_type(IMAGE) mismatch input_type(MASK,VIDEO)"),
    Row("frames_zero_host", "5", "0 frames via Image From Batch (length 0)", "refused (HTTP 400, by the host)",
        "Value 0 smaller than min of 1: length"),
    Row("frames_zero", "5", "0 frames (an empty IMAGE batch; core's empty-video shape [0, 3, 0, 0] too)", "error",
        "video: the clip has 0 frames; load a video with at least 1 frame", "node"),
    Row("frames_one", "5", "1 frame, fixed mode", "completes, 1 frame out (info logged)",
        "fixed mode: 1 frames padded with 16 repeats of the last frame to fill 1 window(s) of 17; the padding is "
        "trimmed from the output (1 frames)"),
    Row("frames_one_reference", "5", "1 frame, reference mode", "error",
        "reference mode needs at least window_frames=17 frames; the video has 1. Use mode 'fixed' (pads short clips) "
        "or a shorter window."),
    Row("frames_50_fixed", "5", "50 frames (not 4k+1), fixed mode", "completes, 50 frames out (info logged)",
        "fixed mode: 50 frames padded with 7 repeats of the last frame to fill 4 window(s) of 17; the padding is "
        "trimmed from the output (50 frames)"),
    Row("frames_50_reference", "5", "50 frames, reference mode (overlap 0)", "warning, completes, 33 frames out",
        "reference mode: the last 16 of 50 frames come after the last full window (17 frames, overlap 0) and are "
        "dropped, as the reference does: 33 output frames. Use window_mode 'fixed' to keep every frame."),
    Row("long_interrupt", "6", "2,000 frames at 16x16 (125 windows), Cancel after 2 windows",
        "interrupted within one step; RSS back within 10%; the next prompt runs"),
    Row("size_16", "7", "encode width 81 (not a multiple of 16)", "refused (HTTP 400)",
        "width x height: expected multiples of 16 between 16 and 4096 (the VAE downsamples by 8, the transformer's "
        "patches are 2x2); got 81x96. Use e.g. 80x96; the video itself may have any size (each window is resized "
        "to width x height)"),
    Row("size_odd_source", "7", "source video of odd size (81x95)", "completes (81x95 frames out)"),
    Row("branch_no_weights", "8", "branch folder without its weights file", "error",
        "{models}/videopainter/e2e_broken/no_weights: expected diffusion_pytorch_model.safetensors or "
        "diffusion_pytorch_model.safetensors.index.json; found ['config.json']: the download is incomplete or this "
        "is not a model folder", host_refusal=NOT_IN_LIST),
    Row("branch_truncated", "8", "truncated branch safetensors", "error",
        "{models}/videopainter/e2e_broken/truncated/diffusion_pytorch_model.safetensors: not a readable safetensors "
        "file (Error while deserializing header: incomplete metadata, file not fully covered); the download may be "
        "truncated or of another format: download it again"),
    Row("branch_missing_tensor", "8", "branch safetensors missing a tensor", "error",
        "{models}/videopainter/e2e_broken/missing_tensor: not a complete VideoPainter branch checkpoint: 1 tensor(s) "
        "missing (e.g. branch_blocks.1.weight); the file is incomplete or belongs to another model: download it "
        "again"),
    Row("branch_wrong_shapes", "8", "branch tensors of another size than its config.json", "error",
        "{models}/videopainter/e2e_broken/wrong_shapes: 50 tensors have the wrong shape for a VideoPainter branch "
        "(e.g. patch_embed.pos_embedding: file has (1, 166, 48), config needs (1, 166, 32)); this checkpoint was "
        "made for another model size"),
    Row("branch_other_backbone", "8", "branch made for another backbone (3 heads instead of 2)", "error",
        "branch: made for another backbone (num_attention_heads=3; this model has num_attention_heads=2). Load the "
        "VideoPainter branch that belongs to this backbone (VideoPainter/checkpoints/branch for CogVideoX-5B-I2V)."),
    Row("pickle_lora", "9", "a .ckpt pickle as the ID LoRA (never unpickled)", "error",
        "{models}/loras/e2e_evil.ckpt: .ckpt files are pickles, which can run code when loaded; this pack loads "
        "safetensors only. Download the .safetensors version of the weights.", host_refusal=NOT_IN_LIST),
    Row("pickle_bin", "9", "pytorch_lora_weights.bin as the ID LoRA (never unpickled)", "error",
        "{models}/videopainter/e2e_broken/pytorch_lora_weights.bin: .bin files are pickles, which can run code when "
        "loaded; this pack loads safetensors only. Download the .safetensors version of the weights.", host_refusal=NOT_IN_LIST),
    Row("pickle_branch", "9", "branch folder with only diffusion_pytorch_model.bin", "error",
        "{models}/videopainter/e2e_broken/pickle_only: only diffusion_pytorch_model.bin (pickles, which can run code "
        "when loaded) found; this pack loads safetensors only: download the diffusion_pytorch_model.safetensors "
        "files", host_refusal=NOT_IN_LIST),
    Row("pickle_renamed", "9", "a torch.save pickle renamed to .safetensors", "error",
        "{models}/bad.safetensors: not a readable safetensors file (Error while deserializing header: header too "
        "large); the download may be truncated or of another format: download it again", "node"),
    Row("lora_sdxl", "10", "SDXL LoRA (kohya lora_unet_down_blocks_... keys) as a style LoRA", "error",
        "{models}/loras/e2e_sdxl_style.safetensors: none of its layers match a CogVideoX-5B-I2V layer (unmatched: "
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_k, "
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q, "
        "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_v); it is a LoRA for another model (SD, "
        "SDXL, Flux...): use a LoRA trained on CogVideoX-5B-I2V"),
    Row("lora_partial", "10", "LoRA with some tensors for another model", "warning, completes",
        "LoRA {models}/loras/mixed.safetensors: 2 of its tensors match no backbone layer and are ignored (unmatched: "
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q)", "node"),
    Row("id_lora_no_branch", "11", "ID LoRA applied, no branch", "error",
        "model: no VideoPainter branch is attached; add 'VideoPainter Apply Branch' before the sampler"),
    Row("branch_no_backbone", "11", "Apply Branch without a MODEL", "refused (HTTP 400)",
        "Required input is missing: model"),
    Row("wrong_model", "11", "an SD3 MODEL (core Load Diffusion Model) into Apply Branch", "error",
        "model: expected the MODEL output of 'VideoPainter Backbone Loader' (CogVideoX-5B-I2V); got a SD3 model. "
        "Connect the VideoPainter backbone here."),
    Row("first_frame_size", "12", "first frame 48x40, video 96x80", "warning, completes",
        "first_frame is 48x40 (WxH) but the video is 96x80: resizing it (Lanczos); give a first frame of the "
        "video's size to avoid the resize"),
    Row("first_frame_aspect", "12", "first frame 48x40, video 80x96 (another aspect ratio)", "error",
        "first_frame is 48x40 (WxH, aspect 1.20) but the video is 80x96 (aspect 0.83; working size 80x96): the aspect "
        "ratios differ by more than 2%, so it cannot be placed on the clip's first frame without moving its content. "
        "Give the clip's first frame after the image inpainter at the video's size 80x96 (e.g. 'VideoPainter First "
        "Frame for Inpainting' -> FLUX Fill), or one already cut and resized to the working size 80x96", "node"),
    Row("first_frame_skip", "12", "first frame read at source frame 0 (First Frame node), encoder skip_first_frames 2",
        "error (before FLUX Fill runs; by the encoder when only its own value changed)",
        "first_frame: node 50 (VideoPainterFirstFrame, 'flux_first_frame_source') reads source frame 0 "
        "(skip_first_frames 0) for the first frame, but node 14 (VideoPainterEncode, 'encode') starts the clip at "
        "source frame 2 (skip_first_frames 2), so the inpainted first frame would show another moment than the "
        "clip's first frame. Set skip_first_frames to 2 on node 50 (the same value as the encoder's "
        "skip_first_frames)"),
    Row("text_long", "13", "prompt longer than max_text_tokens (16 for the demo model, 226 for the real one)",
        "warning (the reference's), completes",
        "The following part of your input was truncated because `max_sequence_length` is set to 16 tokens: the "
        "rocks below and seagulls circle overhead."),
    Row("nan_mask", "14", "NaN mask (SolidMask value NaN)", "error",
        "mask: expected finite values in [0, 1]; got 7680 NaN and 0 infinite values (of 7680): check the node that "
        "produced it"),
    Row("nan_video", "14", "NaN video (Image Blend with factor NaN)", "error",
        "video: expected finite values in [0, 1]; got 391680 NaN and 0 infinite values (of 391680): check the node "
        "that produced it"),
    Row("inf_first_frame", "14", "infinite values in the first frame", "error",
        "first_frame: expected finite values in [0, 1]; got 0 NaN and 2 infinite values (of 23040): check the node "
        "that produced it", "node"),
    Row("oom_sampler", "15", "out of memory in a window (simulated)", "error; models unloaded, memory released",
        "out of memory while sampling window 1 of 3 (" + SAMPLER_OOM_DETAIL + "). Lower the memory need: turn on vae_tiling, use "
        "fewer window_frames (e.g. 33 instead of 49), load the backbone with weight_dtype 'fp8_e4m3fn (storage)', or "
        "start ComfyUI with --lowvram. The loaded models were unloaded and the memory released; the server keeps "
        "running.", "node"),
    Row("oom_decode", "15", "out of memory while decoding (simulated)", "error; models unloaded, memory released",
        "out of memory while decoding (" + DECODE_OOM_DETAIL + "). Lower the memory need: turn on tiling, or start "
        "ComfyUI with --lowvram. The loaded models were unloaded and the memory released; the server keeps "
        "running.", "node"),
    Row("pair", "+", "two prompts queued back to back, branch strength 1.0 and 0.3",
        "both complete, each identical to its run alone"),
    Row("branch_range", "+", "Apply Branch start_percent 0.8 > end_percent 0.2", "refused (HTTP 400)",
        "start_percent, end_percent: expected 0 <= start_percent <= end_percent <= 1; got 0.8 and 0.2"),
    Row("traversal_model", "+", "'../../etc/passwd' as a model or LoRA name", "error",
        "'../../etc/passwd': only names listed under models/videopainter are accepted (no absolute paths, '..', drive "
        "letters or backslashes)", host_refusal=NOT_IN_LIST),
    Row("traversal_state", "+", "'../../etc/passwd' as the ID state file", "refused (HTTP 400)",
        "state_file: '../../etc/passwd' is outside the input folder"),  # validate_inputs owns this combo on every host
    # ---------------------------------------------------------------------------------------------- issue #16
    Row("state_not_safetensors", "16.1", "a file that is not safetensors as the ID state (Load ID State)", "error",
        "state_file: {input}/e2e_not_a_state.safetensors: not a readable safetensors file (Error while deserializing "
        "header: header too large); " + STATE_REMEDY),
    Row("state_missing_tensor", "16.1", "ID state file missing a tensor (also: wrong shapes, dtypes, metadata)",
        "error", "state_file: {input}/e2e_broken_state.safetensors: 1 tensor(s) missing (e.g. hidden.1; metadata says "
        "4 layers); " + STATE_REMEDY),
    Row("state_other_size", "16.2", "chained ID state from a part at another working size (80x96, part 2 64x96)",
        "error (before any step)",
        "id_state: this state does not fit this run: working size 80x96 (WxH; this run: 64x96). It was made with "
        "other weights or settings: run this part with the backbone, working size (Encode width x height), window "
        "settings and cfg of the part that made the state, or without id_state."),
    Row("state_other_cfg", "16.2", "chained ID state made with cfg 6, part 2 with cfg 1 (no CFG batch)",
        "error (before any step)",
        "id_state: this state does not fit this run: CFG batch (2 with cfg > 1, 1 without) 2 (this run: 1). It was made "
        "with other weights or settings: run this part with the backbone, working size (Encode width x height), window "
        "settings and cfg of the part that made the state, or without id_state."),
    Row("state_other_model", "16.2", "ID state made with another model (6 blocks instead of 4)", "error (before any step)",
        "id_state: this state does not fit this run: model fingerprint bea39ed4e8443bfa (this model: fa3b51823b1b950d): "
        "num_layers 6 (this model: 4). It was made with other weights or settings: run this part with the backbone, "
        "working size (Encode width x height), window settings and cfg of the part that made the state, or without "
        "id_state.", "node"),
    Row("state_old_file", "16.2", "ID state saved before its settings were recorded (no made_with metadata)",
        "warning, completes (its tensor shapes are still checked)",
        "{input}/e2e_old_state.safetensors: saved by an older version without the model and window settings it was "
        "made with; only its tensor shapes can be checked against this run. Save it again to have it checked fully.",
        "node"),
    Row("nan_branch", "16.3", "branch checkpoint whose weights are all NaN", "error; models unloaded, memory released",
        "non-finite values in the latents after step 1 of 1 of window 1 of 1: 9600 NaN and 0 infinite of 9600. "
        + SAMPLER_NAN_CAUSES + ". The loaded models were unloaded and the memory released; the server keeps running."),
    Row("nan_decode", "16.3", "VAE that produces NaN (fp16 overflow, simulated) while decoding",
        "error; models unloaded, memory released",
        "non-finite values in the decoded frames 1-9 of 17: 207360 NaN and 0 infinite of 207360. " + DECODE_NAN_CAUSES
        + ". The loaded models were unloaded and the memory released; the server keeps running.", "node"),
    Row("autosave_kill", "16.6",
        "kill -9 of the server while an autosave checkpoint is being written (slowed down), full frame and crop follow",
        "the previous checkpoint stays loadable; resuming from it equals an uninterrupted run bit for bit"),
    Row("autosave_name_drive", "16.9", "autosave_name 'C:x' (drive-relative on Windows)", "refused (HTTP 400)",
        "autosave_name: 'C:x': use a plain file name: no folders, no leading '.', none of \" * / : < > ? \\ |; "
        "e.g. 'my_clip'"),
    Row("reset_windows_text", "16.9", "id_reset_windows 'two'", "refused (HTTP 400)",
        "id_reset_windows: expected comma-separated window numbers like '3, 7'; got 'two'"),
    Row("reset_windows_range", "16.9", "id_reset_windows '5' for a 2-window run", "error (before any model runs)",
        "id_reset_windows: this run has 2 window(s), numbered 0 to 1; got '5'. See 'VideoPainter Window Plan' for "
        "where the windows fall."),
    Row("traversal_windows", "16.9", "Windows-style names (C:x, C:\\x, \\\\server\\share, ..\\x) as model, LoRA, "
        "state file, prefix or autosave name", "error or refused (HTTP 400), on every OS",
        "state_file: 'C:x' is outside the input folder"),
)
ROWS += (  # issue #26 ("Nothing silent, nothing exposed"): rows 26.N, item N of the issue
    Row("truncated_video", "26.1", "a truncated download (H.264 mp4 cut at 55 %) as the video", "error",
        "video: the file is truncated: its container promises 40 frames (2.50 s) but only {n} are in it (up to {t} s); "
        "the download or copy was cut off. Download or copy it again (or, to use the frames that are there, "
        "re-encode it: ffmpeg -i in.mp4 -c:v libx264 out.mp4)", "node"),
    Row("mask_video_frames", "26.2", "a 42-frame mask video for a 40-frame clip (both 14 frames after sampling)",
        "error", "mask: the mask video has 42 frames but the video has 40 (both before frame-rate sampling): give a "
        "mask video with one frame per video frame (the same length as the video), or a single still mask for "
        "every frame", "node"),
    Row("mask_video_rate", "26.2", "a mask video at 8 fps for a 16 fps clip of as many frames", "error",
        "mask: the mask video runs at 8 fps but the video at 16 fps: their frames would not line up; give the mask "
        "video at the video's frame rate (one mask frame per video frame)", "node"),
    Row("mask_video_still", "26.2", "a 1-frame mask video for a 40-frame clip", "completes (the still mask is used "
        "for every frame)", "", "node"),
    Row("first_frame_batch", "26.3", "a whole clip (IMAGE batch of 40) as first_frame", "error",
        "first_frame: expected one image (the inpainted frame 0); got a batch of 40 images. Connect a single image: "
        "the image inpainter's result for frame 0 (e.g. 'VideoPainter First Frame for Inpainting' -> FLUX Fill), "
        "or pick one with Image From Batch (batch_index 0, length 1)", "node"),
    Row("lora_other_size", "26.4", "a style or ID LoRA with CogVideoX key names but another model size's shapes",
        "error (before sampling)",
        "{models}/loras/e2e_other_size.safetensors: 24 of its 24 matched layers do not fit this model (first: "
        "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight gives a 64x64 update, the model's "
        "diffusion_model.transformer_blocks.0.attn1.to_q.weight is 32x32); it is a LoRA for another model size: "
        "use a LoRA trained on CogVideoX-5B-I2V", "node"),
    Row("part_without_id_state", "26.5", "the parts workflow with part 1's id_state unwired", "error (before any step)",
        "id_state: this is part 1 of 3 (0-based, from 'VideoPainter Cut Part'), which continues part 0, but the "
        "sampler's id_state input is not connected. Wire the id_state output of part 0's sampler (with "
        "output_id_state on) into this sampler's id_state, or load part 0's saved state with 'VideoPainter Load ID "
        "State'", "node"),
    Row("join_unrelated", "26.5", "Join Latents with a second run sampled without id_state", "error",
        "second: this latent was not sampled with an id_state, so it does not continue 'first' and joining would put "
        "two unrelated runs end to end. Wire the id_state output of the sampler that made 'first' (with "
        "output_id_state on) into the id_state input of the sampler that makes 'second'", "node"),
    Row("join_out_of_order", "26.5", "Join Latents of part 0 and part 2", "error",
        "second: it is part 2 of 3, which does not continue 'first' (parts 0..0 of 3); join the parts in order: "
        "'second' must be part 1", "node"),
    Row("cfg_nan", "26.6", "cfg NaN through the API (and NaN/infinity in every FLOAT widget of every node)",
        "refused (HTTP 400)", "cfg: expected a finite number between 0 and 30; got nan (NaN and infinity are not "
        "valid widget values: the host's range check cannot catch them). Send a number"),
    Row("strength_nan_linked", "26.7", "Apply Branch strength NaN (from a link; as a widget it is refused like cfg)",
        "error (before sampling)", "strength: expected a finite number between 0 and 2; got nan (NaN and infinity "
        "are not valid widget values: the host's range check cannot catch them). Send a number", "node"),
)
BY_KEY = {row.key: row for row in ROWS}
assert len(BY_KEY) == len(ROWS), "duplicate keys"


def message(key: str, models: str | Path = "{models}", input: str | Path = "{input}") -> str:  # noqa: A002
    return BY_KEY[key].text(models, input)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def readme_table() -> str:
    """The markdown table of :data:`ROWS` (what ``tests/e2e/README.md`` shows between its markers)."""
    lines = [BEGIN, "| # | input | outcome | message (exact) | tested |", "|---|---|---|---|---|"]
    for row in ROWS:
        msg = f"``{_cell(row.text('<models>', '<input>'))}``" if row.message else ""
        outcome = row.outcome
        if row.host_refusal:
            outcome += f"; refused by the host on {HOST_CHECKS_COMBOS_TEXT} (HTTP 400 ``{row.host_refusal}``)"
        lines.append(f"| {row.case} | {_cell(row.what)} | {_cell(outcome)} | {msg} | {row.where} |")
    lines.append(END)
    return "\n".join(lines)


def write_readme() -> None:
    text = README.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    README.write_text(text[:start] + readme_table() + text[end:])


if __name__ == "__main__":
    write_readme()
    sys.stdout.write(f"updated {README}\n")
