"""Conformance against the reference implementation's recorded outputs (``shared/conformance`` format):
``python -m vp_core.conformance DIR``. The top room: it may import any other room, and none imports it."""
