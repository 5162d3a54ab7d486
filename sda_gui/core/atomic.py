"""Writing files without ever destroying the previous one.

``atomic_path(path)`` yields a temporary path in the same folder (same file
system, so the final ``os.replace`` is atomic). The caller writes the whole file
there; on success the temporary is fsynced and renamed over ``path`` (and the
folder fsynced, so the rename survives a crash); on any failure — a full disk,
an exception, a cancel — the temporary is removed and ``path`` keeps whatever it
held before. A reader therefore sees either the old file or the new one, never a
half-written one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "fsync_file"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_file(path) -> None:
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system lets a folder be fsynced
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it when the block ends without error.

    The temporary keeps ``path``'s suffix so writers that choose a format by suffix
    (numpy, h5py) write the right one; numpy's ``savez`` is given the exact name.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=folder)
    os.close(fd)
    tmp = Path(tmp)
    # mkstemp makes the file private (0600); the result gets the old file's mode, or the umask's
    try:
        mode = path.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    with contextlib.suppress(OSError):
        os.chmod(tmp, mode)
    try:
        yield tmp
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(folder)
