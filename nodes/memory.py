"""Out-of-memory (and non-finite results) during a node: one clear message naming the settings to lower (or the
likely causes), with the memory released first.

ComfyUI's own handler only sees ``torch.OutOfMemoryError`` and answers with a tip about batch sizes, which VideoPainter
nodes do not have. Here the error is replaced by :class:`VideoPainterOutOfMemoryError` after the failed call's
frames (and the window tensors they hold) are dropped, the models are unloaded as ComfyUI does for an OOM, and the
allocator cache is emptied, so the next prompt starts with the memory free. A :class:`NonFiniteError` (NaN or
infinity in the latents or frames, e.g. fp16 overflow) is handled the same way: the run is over, so the models it
loaded are unloaded as for an OOM and :class:`VideoPainterNonFiniteError` keeps the message.
"""
from __future__ import annotations

import gc
import traceback
from typing import Callable, TypeVar

import comfy.model_management
import torch

from ..vp_core.base.finite import NonFiniteError

T = TypeVar("T")

SAMPLER_REMEDY = (
    "turn on vae_tiling, use fewer window_frames (e.g. 33 instead of 49), load the backbone with weight_dtype "
    "'fp8_e4m3fn (storage)', or start ComfyUI with --lowvram"
)
DECODE_REMEDY = "turn on tiling, or start ComfyUI with --lowvram"
CPU_ALLOC_FAILURE = "can't allocate memory"  # torch's CPU allocator raises a RuntimeError with this text


RELEASED = "The loaded models were unloaded and the memory released; the server keeps running."


class VideoPainterOutOfMemoryError(RuntimeError):
    """The device (or host) ran out of memory inside a VideoPainter node; the message names what to lower."""


class VideoPainterNonFiniteError(RuntimeError):
    """NaN or infinite values appeared inside a VideoPainter node; the message says where and the likely causes."""


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(error, RuntimeError) and CPU_ALLOC_FAILURE in str(error)


def out_of_memory_message(what: str, detail: str, remedy: str) -> str:
    return (
        f"out of memory while {what} ({detail}). Lower the memory need: {remedy}. {RELEASED}"
    )


def call_releasing_memory(fn: Callable[[], T], what: str | Callable[[], str], remedy: str) -> T:
    """``fn()``; an out-of-memory error becomes :class:`VideoPainterOutOfMemoryError` and a :class:`NonFiniteError`
    :class:`VideoPainterNonFiniteError`, once the memory is released.

    Parameters:
        what: what was running, for the message ("sampling", "decoding"); a callable is asked after the failure
            (e.g. to name the window that failed).
        remedy: the settings to lower, in the node's own input names.
    """
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - anything that is not an OOM or non-finite result is re-raised unchanged
        if isinstance(e, NonFiniteError):
            error: RuntimeError = VideoPainterNonFiniteError(f"{e} {RELEASED}")
        elif is_out_of_memory(e):
            detail = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            error = VideoPainterOutOfMemoryError(out_of_memory_message(what() if callable(what) else what, detail, remedy))
        else:
            raise
        traceback.clear_frames(e.__traceback__)  # the failed frames hold the window's tensors
    # Raised outside the except block, so the new error does not keep the old one (and its frames) as __context__.
    gc.collect()
    comfy.model_management.unload_all_models()
    comfy.model_management.soft_empty_cache()
    raise error
