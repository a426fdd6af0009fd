"""The headless client's errors: one hierarchy (``ComfyClientError``) for what a server, a workflow or a prompt
can refuse, shared by the client (``comfy_client``), the workflow helpers (``workflow``) and the runners."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PARTIAL_PROMPT_ERROR = "prompt_outputs_partially_failed_validation"  # our own type for the HTTP 200 case


class ComfyClientError(RuntimeError):
    """Base class for everything this module raises about the server or a prompt."""


class ServerStartError(ComfyClientError):
    """The host did not come up; the message ends with the tail of its log."""


class ServerGoneError(ComfyClientError):
    """The server stopped answering while a prompt was being followed."""


class OverrideError(ComfyClientError, KeyError):
    """A ``--set NODE.INPUT=VALUE`` did not name exactly one node and one of its inputs."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0])


class PromptValidationError(ComfyClientError):
    """The graph failed validation: POST /prompt answered 400 (nothing ran), or it answered 200 with
    ``node_errors`` (some outputs failed validation and ComfyUI queued the rest; ``submit`` cancels that prompt
    unless ``allow_partial``).

    Parameters:
        error: the server's top-level ``error`` object (``type``, ``message``, ``details``).
        node_errors: ``{node_id: {"class_type", "errors": [{"type", "message", "details", "extra_info"}]}}``.
        cancelled_prompt_id: for the partial case, the id of the prompt the server had queued (now cancelled).
    """

    def __init__(self, error: Mapping[str, Any], node_errors: Mapping[str, Any],
                 cancelled_prompt_id: str | None = None):
        self.error = dict(error)
        self.node_errors = dict(node_errors)
        self.cancelled_prompt_id = cancelled_prompt_id
        super().__init__(format_validation_error(self.error, self.node_errors))


@dataclass(frozen=True)
class NodeError:
    """An exception raised while a node executed (the ``execution_error`` message)."""

    node_id: str
    node_type: str
    exception_type: str
    exception_message: str
    traceback: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"node {self.node_id} ({self.node_type}): {self.exception_message.strip()}"


class PromptExecutionError(ComfyClientError):
    """A prompt failed or was interrupted while executing; ``result`` holds the details."""

    def __init__(self, result: Any):  # comfy_client.RunResult
        self.result = result
        super().__init__(str(result.error) if result.error else f"prompt {result.prompt_id} {result.status}")


def format_validation_error(error: Mapping[str, Any], node_errors: Mapping[str, Any]) -> str:
    """Readable text for a refused graph: one line per node input error, else the top-level message."""
    lines = []
    for nid, info in node_errors.items():
        for err in info.get("errors", []):
            input_name = err.get("extra_info", {}).get("input_name")
            where = f"node {nid} ({info.get('class_type', '?')})" + (f", input {input_name!r}" if input_name else "")
            details = f": {err['details']}" if err.get("details") else ""
            lines.append(f"{where}: {err.get('message', err.get('type', 'invalid'))}{details}")
    if not lines:
        details = f": {error['details']}" if error.get("details") else ""
        lines.append(f"{error.get('message', error.get('type', 'invalid prompt'))}{details}")
    head = "prompt failed validation"
    if error.get("type") == PARTIAL_PROMPT_ERROR:
        head += f" ({error.get('message')})"
    return head + ":\n  " + "\n  ".join(lines)
