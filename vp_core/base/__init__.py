"""The floor every other room stands on: atomic file writes (``atomic``), non-finite checks (``finite``) and finding
the ComfyUI host for standalone tools (``hostenv``). Standard library and torch only; imports nothing of this pack."""
