"""Test hook (never on a production path): put this folder on PYTHONPATH of a ComfyUI server to make ONE
safetensors write slow, so a test can kill the server in the middle of it.

``VP_TEST_SLOW_SAVE_MATCH``: a substring of the file name to slow down; ``VP_TEST_SLOW_SAVE_CALL``: which write of
such a file (1-based); ``VP_TEST_SLOW_SAVE_MARKER``: a file created once half of the bytes are on disk. The write then
sleeps (the test kills the server meanwhile). Whatever file name the pack writes to is what gets half-written: the
final autosave name if the pack wrote in place, its temporary name if it writes atomically.
"""
import os

if os.environ.get("VP_TEST_SLOW_SAVE_MATCH"):
    import time

    import safetensors.torch as st

    _real_save_file = st.save_file
    _calls = {"n": 0}

    def _slow_save_file(tensors, filename, metadata=None):
        if os.environ["VP_TEST_SLOW_SAVE_MATCH"] not in os.path.basename(str(filename)):
            return _real_save_file(tensors, filename, metadata)
        _calls["n"] += 1
        if _calls["n"] != int(os.environ.get("VP_TEST_SLOW_SAVE_CALL", "1")):
            return _real_save_file(tensors, filename, metadata)
        data = st.save(tensors, metadata)
        with open(filename, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
            open(os.environ["VP_TEST_SLOW_SAVE_MARKER"], "w").close()
            time.sleep(float(os.environ.get("VP_TEST_SLOW_SAVE_SECONDS", "600")))
            f.write(data[len(data) // 2:])
        return None

    st.save_file = _slow_save_file
