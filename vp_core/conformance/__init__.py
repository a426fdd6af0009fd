"""Conformance against the reference implementation's recorded outputs (``shared/conformance`` format)."""
