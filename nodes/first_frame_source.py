"""Whether the encoder's ``first_frame`` was painted on the clip's first kept frame, read from the prompt graph.

The encoder starts the clip at source frame ``skip_first_frames`` (dropped before frame-rate sampling, as
VideoHelperSuite does); the first frame it is given replaces that frame. An inpainted image carries no trace of the
frame it was painted on, but the graph does: a frame reader (``VideoPainterFirstFrame``'s ``skip_first_frames``,
``VideoPainterVideoFrame``'s ``index``) upstream of the encoder's ``first_frame`` that reads the encoder's own
``video`` input (the same link) read that source frame. When both numbers are widget values and differ, the first
frame shows another moment of the clip than the one the video starts from: refused, naming both nodes.

Numbers are widget values or the value of a core ``PrimitiveInt`` node they are linked to; anything not known
from the graph alone (numbers computed by other nodes, a reader of another VIDEO node, an image from elsewhere) is
not judged. The check runs in the readers (before FLUX Fill samples) and in the encoder (which
ComfyUI runs again when only its own ``skip_first_frames`` changed, while the reader's result is cached).
"""
from __future__ import annotations

from collections import deque

ENCODER = "VideoPainterEncode"
READERS = {"VideoPainterFirstFrame": "skip_first_frames", "VideoPainterVideoFrame": "index"}
PRIMITIVE_INT = "PrimitiveInt"  # core's int primitive node (comfy_extras/nodes_primitive.py)


def _is_link(v) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[1], int)


def _upstream(prompt: dict, start: str) -> list[str]:
    """Node ids that feed ``start`` (itself included), nearest first."""
    seen, order, todo = {start}, [], deque([start])
    while todo:
        nid = todo.popleft()
        order.append(nid)
        for v in prompt[nid].get("inputs", {}).values():
            if _is_link(v) and str(v[0]) in prompt and str(v[0]) not in seen:
                seen.add(str(v[0]))
                todo.append(str(v[0]))
    return order


def _number(prompt: dict, v) -> int | None:
    """A widget's int, or the literal of core's ``PrimitiveInt`` node it is linked to (how a number shared by
    several nodes is wired); None for anything else."""
    if _is_link(v) and prompt.get(str(v[0]), {}).get("class_type") == PRIMITIVE_INT:
        v = prompt[str(v[0])].get("inputs", {}).get("value")
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _name(prompt: dict, nid: str) -> str:
    title = (prompt[nid].get("_meta") or {}).get("title")
    return f"node {nid} ({prompt[nid]['class_type']}{f', {title!r}' if title else ''})"


def mismatch(prompt: dict | None, node_id: str | None) -> str | None:
    """The refusal for the first encoder / frame-reader pair of ``prompt`` that involves ``node_id`` (an encoder or
    a reader) and reads different source frames as the clip's first; None when there is none or nothing is known."""
    if not prompt or node_id is None:
        return None
    node_id = str(node_id)
    for eid, enc in prompt.items():
        inputs = enc.get("inputs", {})
        if enc.get("class_type") != ENCODER or not _is_link(inputs.get("first_frame")):
            continue
        skip = _number(prompt, inputs.get("skip_first_frames", 0))
        for rid in _upstream(prompt, str(inputs["first_frame"][0])):
            key = READERS.get(prompt[rid].get("class_type"))
            if key is None or node_id not in (str(eid), rid) or prompt[rid].get("inputs", {}).get("video") != inputs.get("video"):
                continue
            frame = _number(prompt, prompt[rid].get("inputs", {}).get(key, 0))
            if skip is None or frame is None or frame == skip:
                continue
            return (
                f"first_frame: {_name(prompt, rid)} reads source frame {frame} ({key} {frame}) for the first frame, "
                f"but {_name(prompt, str(eid))} starts the clip at source frame {skip} (skip_first_frames {skip}), so "
                f"the inpainted first frame would show another moment than the clip's first frame. Set {key} to "
                f"{skip} on node {rid} (the same value as the encoder's skip_first_frames)"
            )
    return None


def check(node_cls) -> None:
    """Raise ``mismatch``'s refusal for the running node (its hidden ``prompt`` and ``unique_id``), if any."""
    hidden = getattr(node_cls, "hidden", None)
    message = mismatch(getattr(hidden, "prompt", None), getattr(hidden, "unique_id", None))
    if message:
        raise ValueError(message)
