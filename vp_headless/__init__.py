"""The headless side: a client for a ComfyUI server running this pack, and the runners built on it.

``comfy_client`` (start the pinned host, upload, submit, follow, collect; re-exports ``errors`` and ``workflow``),
``run`` (``scripts/vp_run.py``), ``batch`` with ``batch_jobs`` / ``batch_tasks`` / ``batch_worker`` / ``batch_eval``
(``scripts/vp_batch.py``, Ray or local) and ``evaluate`` (``scripts/vp_eval.py``). It talks to the nodes only
through the server's HTTP API, so it never imports ``nodes``; it may import ``vp_core`` (``base`` for atomic writes
and finding the host; ``evaluation`` for the metrics, on first use).
"""
