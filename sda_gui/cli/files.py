"""The command line's own outputs: posterior files and report folders, never half-written.

A posterior file (every method writes the same one) holds ``samples``
``(N, L, *state_shape)`` float32 and ``settings`` (in a netCDF file: the ``meta``
attribute), a JSON record of the run: the
method and its settings, the system, members, seed, device, model, seconds and the
method's diagnostics. It goes through ``core.datasets.write_arrays`` (atomic).

A report (``evaluate``, ``compare``) is several files; ``staged_dir`` has them
written into a hidden folder inside the target folder first and moves each into
place only when all were written, so a failed report (a full disk) leaves the
files of the previous one as they were.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .checks import CliError

__all__ = ["write_posterior", "staged_dir", "moved", "json_safe"]


def json_safe(value):
    """Numbers, strings, lists and dicts as JSON accepts them (non-finite floats become strings)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.generic,)):
        value = value.item()
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def write_posterior(path, members, record: dict, system=None) -> None:
    """``.npz``/``.h5``: ``samples`` and ``settings`` (JSON); netCDF: ``samples(sample, time, *state)``
    with the system's coordinates and the record as the ``meta`` attribute (``core.netcdf``)."""
    from sda_gui.core.datasets import write_arrays
    from sda_gui.core.netcdf import is_netcdf, write_samples_nc

    samples = np.asarray(members.numpy() if hasattr(members, "numpy") else members, dtype=np.float32)
    if is_netcdf(path):
        write_samples_nc(path, samples, system, json_safe(record))
        return
    write_arrays(path, {"samples": samples}, {"settings": json.dumps(json_safe(record))})


@contextlib.contextmanager
def staged_dir(out_dir) -> Iterator[Path]:
    """A hidden folder inside ``out_dir`` to write a report into; its files replace those of ``out_dir``
    when the block ends without error, and nothing in ``out_dir`` changes otherwise."""
    from sda_gui.core.atomic import fsync_file
    from sda_gui.core.datasets import first_line

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    except OSError as exc:
        raise CliError(f"cannot write into {out_dir}: {first_line(exc)}") from None
    try:
        try:
            yield stage
            for item in sorted(stage.iterdir()):
                fsync_file(item)
        except OSError as exc:
            raise CliError(f"cannot write the report in {out_dir}: {first_line(exc)} "
                           f"(the files there are unchanged)") from None
        for item in sorted(stage.iterdir()):
            os.replace(item, out_dir / item.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def moved(paths: dict, stage: Path, out_dir: Path) -> dict:
    """The final paths of files written into ``stage``."""
    return {key: Path(out_dir) / Path(p).relative_to(stage) for key, p in paths.items()}
