"""Atomic file writes: the one way this pack writes a file, so a crash or a kill at any moment leaves either the old
file or the new one at the final name, never a half-written one.

The content goes to a hidden temporary name in the same folder (same file system, so the rename is atomic), is
flushed and fsynced, then ``os.replace``s the final name; the folder is fsynced too where the OS allows it, so the
rename itself survives a power loss. Standard library only: the headless scripts import this without torch.
(Hand-written rather than a dependency: it is a dozen lines, and safetensors must write to a path, which the common
packages' file-object API does not fit.)
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TEMP_SUFFIX = ".tmp"
STALE_AFTER_S = 3600  # a temp file of the same name untouched this long was left by a killed writer
log = logging.getLogger(__name__)


def temp_name(path: Path) -> Path:
    """A fresh hidden name next to ``path`` (``.<name>.<random>.tmp``: never listed as a ``.safetensors`` file)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def _fsync(path: Path, directory: bool = False) -> None:
    if directory:
        if os.name == "nt":  # Windows cannot open a folder for fsync; NTFS journals the rename itself
            return
        fd = os.open(path, os.O_RDONLY)
    else:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))  # Windows' fsync needs a writable handle
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yields a temporary path next to ``path``; whatever the block writes there replaces ``path`` atomically when the
    block ends, and is removed if it raises. For writers that take a file name (``safetensors.torch.save_file``)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(final)
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the usual permissions (umask applies)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync(final.parent, directory=True)
    _remove_stale_temps(final)


def _remove_stale_temps(final: Path) -> None:
    """A kill mid-write leaves its temp file (at real size an ID state is ~9 GB): remove those of ``final`` that no
    writer has touched for :data:`STALE_AFTER_S` (a live writer keeps its file's mtime fresh)."""
    cutoff = time.time() - STALE_AFTER_S
    for tmp in final.parent.glob(f".{final.name}.*{TEMP_SUFFIX}"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                log.info("removed %s, left by an interrupted write of %s", tmp.name, final.name)
        except OSError:  # removed meanwhile, or not ours to remove
            pass


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """``shutil.copyfile`` into place atomically."""
    import shutil

    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
