"""ID-state nodes: save/load the state between queue runs, and join the latents of chained parts."""
from __future__ import annotations

import os
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import io

from ..vp_core.pipeline import id_state_io, parts, sampling
from ..vp_core.pipeline.windows import decoded_frame_count
from .paths import confine, relative_name_error
from .types import ID_STATE

SUBFOLDER = "videopainter"


class VideoPainterSaveIDState(io.ComfyNode):
    """Saves an ID state (safetensors, no pickle) to output/videopainter/, so a long clip can be finished in another
    queue run or resumed after an interrupt: copy the file to input/ and load it with 'VideoPainter Load ID State'."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterSaveIDState",
            display_name="VideoPainter Save ID State",
            category="videopainter/id_state",
            description=cls.__doc__,
            inputs=[ID_STATE.Input("id_state"), io.String.Input("filename_prefix", default="id_state")],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def validate_inputs(cls, filename_prefix: str | None = None) -> bool | str:
        return True if filename_prefix is None else _prefix_error(filename_prefix) or True

    @classmethod
    def execute(cls, id_state, filename_prefix: str) -> io.NodeOutput:
        if (error := _prefix_error(filename_prefix)) is not None:
            raise ValueError(error)
        if id_state is None:
            raise ValueError("id_state: the sampler returned no state; turn on 'output_id_state' in the sampler")
        out_dir, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            f"{SUBFOLDER}/{filename_prefix}", folder_paths.get_output_directory())
        filename = f"{name}_{counter:05}_.safetensors"
        id_state_io.save_state(id_state, os.path.join(out_dir, filename))
        text = f"{subfolder}/{filename}: {id_state_io.describe(id_state)}"
        return io.NodeOutput(ui={"text": [text], "id_states": [{"filename": filename, "subfolder": subfolder, "type": "output"}]})


def _prefix_error(prefix: str) -> str | None:
    problem = relative_name_error(prefix)
    return None if problem is None else f"filename_prefix: {prefix!r}: {problem}; give a name like 'id_state' or 'clip/part1'"


def _state_path(state_file: str) -> tuple[Path | None, str | None]:
    """The file ``state_file`` names inside the input folder (ComfyUI's ``[output]``/``[temp]`` annotations
    allowed), or why it cannot be used."""
    name, base = folder_paths.annotated_filepath(state_file)
    root = base or folder_paths.get_input_directory()
    path = confine(root, name)
    if path is None:
        return None, f"state_file: {state_file!r} is outside the input folder"
    if not path.is_file():
        return None, (f"state_file: {state_file!r} not found in the input folder; copy the saved state (from "
                      "output/videopainter/) into ComfyUI/input and refresh the node")
    return path, None


def _state_files() -> list[str]:
    root = folder_paths.get_input_directory()
    out = []
    for dirpath, _, files in os.walk(root):
        out += [os.path.relpath(os.path.join(dirpath, f), root) for f in files if f.endswith(".safetensors")]
    return sorted(out)


class VideoPainterLoadIDState(io.ComfyNode):
    """Loads an ID state saved by 'VideoPainter Save ID State' from the input folder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterLoadIDState",
            display_name="VideoPainter Load ID State",
            category="videopainter/id_state",
            description=cls.__doc__,
            inputs=[io.Combo.Input("state_file", options=_state_files(), tooltip="A .safetensors state in ComfyUI/input.")],
            outputs=[ID_STATE.Output("id_state")],
        )

    @classmethod
    def validate_inputs(cls, state_file: str | None = None) -> bool | str:
        return True if state_file is None else _state_path(state_file)[1] or True

    @classmethod
    def execute(cls, state_file: str) -> io.NodeOutput:
        path, error = _state_path(state_file)
        if error is not None:
            raise ValueError(error)
        try:
            return io.NodeOutput(id_state_io.load_state(path))
        except id_state_io.IDStateFileError as e:
            raise ValueError(f"state_file: {e}") from None


class VideoPainterJoinLatents(io.ComfyNode):
    """Joins the latents of two chained sampler runs (the second continued from the first's ID state): the latents
    they share are averaged exactly as one long run merges its windows, so decoding gives the same video."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="VideoPainterJoinLatents",
            display_name="VideoPainter Join Latents",
            category="videopainter/id_state",
            description=cls.__doc__,
            inputs=[io.Latent.Input("first"), io.Latent.Input("second", tooltip="The part run with the first part's id_state.")],
            outputs=[io.Latent.Output("latent")],
        )

    @classmethod
    def execute(cls, first, second) -> io.NodeOutput:
        a, b = (x["samples"].permute(0, 2, 1, 3, 4) for x in (first, second))
        info_b = second.get("videopainter", {})
        parts.check_join(first.get("videopainter", {}), info_b)
        shared = info_b.get("shared_latents", 0)
        joined = sampling.join_latents(a, b, shared)
        info = dict(first.get("videopainter", {}))
        info.update(output_frames=decoded_frame_count(joined.shape[1]) - info_b.get("padded_frames", 0), shared_latents=0)
        if "parts" in info and "parts" in info_b:
            info["parts"] = [info["parts"][0], info_b["parts"][1], info_b["parts"][2]]
        return io.NodeOutput({"samples": joined.permute(0, 2, 1, 3, 4).contiguous(), "videopainter": info})


NODES = [VideoPainterSaveIDState, VideoPainterLoadIDState, VideoPainterJoinLatents]
