"""Provenance: what every output file records about how it was made.

``provenance(...)`` is one JSON-ready dict:

- ``sda_gui_version``, ``torch_version``, ``numpy_version``, ``python``, ``created`` (UTC);
- ``system``: name, parameters and source (built-in, plugin file + sha256, entry point, data);
- ``model``: the resolved checkpoint path and its sha256 (when a model was used);
- ``observation`` / ``data``: the input file's resolved path and sha256;
- ``settings`` and ``seeds``: everything the run was given.

Posterior files carry it in their ``settings`` record (``provenance``), simulations in
their ``meta``, checkpoints as a ``provenance`` entry (``add_to_checkpoint`` adds the
training data's file after the run), compare reports as ``provenance.json``.
"""

from __future__ import annotations

import datetime
import platform
from pathlib import Path
from typing import Optional

__all__ = ["provenance", "file_record", "add_to_checkpoint"]


def file_record(path) -> Optional[dict]:
    """``{"path": resolved, "sha256": …}`` of a file (None for no path; no sha256 if unreadable)."""
    if path is None:
        return None
    from .systems.plugins import sha256_file

    p = Path(path).expanduser().resolve()
    out = {"path": str(p)}
    try:
        out["sha256"] = sha256_file(p)
    except OSError:
        pass
    return out


def provenance(system=None, model=None, model_path=None, observation_path=None, data_path=None,
               settings: Optional[dict] = None, seeds: Optional[dict] = None, **extra) -> dict:
    import numpy
    import torch

    from sda_gui import __version__

    # plain str: torch.__version__ is a str subclass that weights_only checkpoints cannot hold
    record = {"sda_gui_version": __version__, "torch_version": str(torch.__version__),
              "numpy_version": str(numpy.__version__),
              "python": platform.python_version(),
              "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if system is not None:
        from .systems.plugins import source_of

        record["system"] = {"name": system.name, "params": dict(system.params), "source": source_of(system)}
    path = model_path or (getattr(model, "source_path", None) if model is not None else None)
    if model is not None or model_path is not None:
        record["model"] = file_record(path) or {"path": None}
    for key, value in (("observation", observation_path), ("data", data_path)):
        if value is not None:
            record[key] = file_record(value)
    if settings is not None:
        record["settings"] = dict(settings)
    if seeds is not None:
        record["seeds"] = dict(seeds)
    record.update(extra)
    return record


def add_to_checkpoint(path, entries: dict) -> None:
    """Merges ``entries`` into a checkpoint's ``provenance`` (rewritten atomically, everything else kept)."""
    import io

    import torch

    from .atomic import atomic_path
    from .diffusion.checkpoint import read_checkpoint

    data = read_checkpoint(path)
    data["provenance"] = dict(data.get("provenance") or {}, **entries)
    image = io.BytesIO()
    torch.save(data, image)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as out:
            out.write(image.getbuffer())
