"""Checkpoints: the weights plus everything needed to rebuild and check a model.

A checkpoint is a ``torch.save`` dict with ``format``, ``system`` (name and
parameters), ``state_shape``, ``k``, ``arch``, ``normalization`` (mean, scale),
``schedule``, ``training`` (settings, data seed, losses), ``provenance``
(``core.provenance``: versions, the system's source, the data file) and ``weights``
(optionally stored in float16 to keep shipped files small). A resumable training
checkpoint also carries ``train_state`` (optimiser, learning-rate schedule, step).

Files are written atomically and read with ``weights_only=True`` (no unpickling of
code); every entry is checked for type and range before a model is built from it,
so a damaged file gives one ``CheckpointError`` line.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..atomic import atomic_path
from ..datasets import WriteError, first_line
from .local_score import LocalScoreModel
from .networks import build_network
from .schedule import VPSchedule

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "build_model", "default_model_path",
           "shipped_model_paths", "read_checkpoint", "check_model_for_system", "model_system", "load_model_for",
           "FORMAT"]

FORMAT = "sda-studio-checkpoint/1"


def _shipped_models_folder() -> Path:
    """``sda_gui/resources/models`` of the installed package (package data, found through
    ``importlib.resources``: a wheel and a source checkout alike). A package unpacked onto a
    file system gives a real folder, which torch needs to read a file by path."""
    from importlib.resources import files

    return Path(str(files("sda_gui.resources").joinpath("models")))


#: the shipped models: ``<system>.pt`` (the default) and ``<system>_*.pt``
RESOURCES = _shipped_models_folder()


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line for the user."""


#: systems whose most accurate shipped model is too slow for an interactive CPU run: their default on a
#: CUDA device (on the CPU the default stays ``<name>.pt``)
GPU_DEFAULTS = {"kolmogorov": "kolmogorov_unet.pt", "lorenz96": "lorenz96_large.pt"}
#: what a sampler step of that model costs on the CPU, in steps of ``<name>.pt`` (measured by
#: ``bench assimilate`` on one thread, docs/benchmarks.md)
GPU_MODEL_CPU_COST = {"kolmogorov": 18, "lorenz96": 4.5}


def _is_cuda(device) -> bool:
    name = str(device) if device is not None else "cpu"
    if name in ("", "auto"):
        return torch.cuda.is_available()
    return name.startswith("cuda")


def default_model_path(system_name: str, device=None) -> Path:
    """``<name>.pt``, or on a CUDA device (``"auto"`` where one exists) the system's GPU model."""
    gpu = GPU_DEFAULTS.get(system_name)
    if gpu is not None and _is_cuda(device) and (RESOURCES / gpu).exists():
        return RESOURCES / gpu
    return RESOURCES / f"{system_name}.pt"


def shipped_model_paths(system_name: str, device=None) -> list[Path]:
    """The default model of a system for ``device`` first, then the other ``<name>.pt``/``<name>_*.pt``."""
    default = default_model_path(system_name, device)
    others = [RESOURCES / f"{system_name}.pt"] + sorted(RESOURCES.glob(f"{system_name}_*.pt"))
    return ([default] if default.exists() else []) + [p for p in others if p.exists() and p != default]


def build_model(system, k: int, arch: dict, schedule: Optional[VPSchedule] = None) -> LocalScoreModel:
    mean, scale = system.normalization()
    schedule = schedule or VPSchedule()
    net = build_network(arch, 2 * k + 1, system.state_shape, schedule)
    return LocalScoreModel(net, k, system.state_shape, mean, scale, schedule, system.config(), dict(arch))


def save_checkpoint(model: LocalScoreModel, path, training: Optional[dict] = None, half: bool = False,
                    train_state: Optional[dict] = None) -> None:
    """Writes the checkpoint atomically: a failed write (a full disk) raises ``WriteError`` and leaves
    the previous file at ``path`` as it was."""
    weights = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu()
               for k, v in model.net.state_dict().items()}
    payload = {
        "format": FORMAT,
        "system": model.system,
        "state_shape": list(model.state_shape),
        "k": model.k,
        "arch": model.arch,
        "normalization": {"mean": model.mean.cpu(), "scale": model.scale.cpu()},
        "schedule": model.schedule.config(),
        "training": training or {},
        "weights": weights,
    }
    if train_state is not None:
        payload["train_state"] = train_state
    from ..provenance import provenance

    # versions and the system's source; the data file is added by the caller (provenance.add_to_checkpoint)
    payload["provenance"] = dict(getattr(model, "provenance", None) or {}, **provenance(), system=dict(model.system))
    path = Path(path)
    # serialised in memory first: torch's file writer reports a failed disk write as a RuntimeError
    # of its internals; plain file IO reports it as the OSError it is
    image = io.BytesIO()
    torch.save(payload, image)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as out:
                out.write(image.getbuffer())
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {first_line(exc)} (nothing was changed there)") from None


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a model file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"model file {path.name} is empty")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read model file {path.name}: {first_line(exc)}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not an SDA Studio model checkpoint")
    return data


def _check_structure(data: dict) -> None:
    """Raises ValueError naming the first entry of a checkpoint dict that has the wrong type or range."""
    system = data.get("system")
    if not isinstance(system, dict) or not isinstance(system.get("name"), str) \
            or not isinstance(system.get("params", {}), dict):
        raise ValueError("'system' must be {name, params}")
    shape = data.get("state_shape")
    if not isinstance(shape, (list, tuple)) or not shape or \
            not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        raise ValueError("'state_shape' must be a list of positive integers")
    k = data.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise ValueError("'k' must be an integer ≥ 0")
    schedule = data.get("schedule")
    eta = schedule.get("eta", 1e-3) if isinstance(schedule, dict) else None
    if not isinstance(eta, (int, float)) or isinstance(eta, bool) or not 0 < eta < 1:
        raise ValueError("'schedule' must hold an eta in (0, 1)")
    arch = data.get("arch")
    if not isinstance(arch, dict) or not isinstance(arch.get("name"), str):
        raise ValueError("'arch' must be a dict with a name")
    norm = data.get("normalization")
    if not isinstance(norm, dict) or not all(torch.is_tensor(norm.get(key)) for key in ("mean", "scale")):
        raise ValueError("'normalization' must hold mean and scale tensors")
    for key in ("mean", "scale"):
        value = norm[key]
        try:
            # numpy's rule is the same; torch.broadcast_shapes imports sympy on first use (~0.4 s of start-up)
            np.broadcast_shapes(tuple(value.shape), tuple(shape))
        except ValueError:
            raise ValueError(f"normalization {key} of shape {tuple(value.shape)} does not fit states {tuple(shape)}") \
                from None
        if not torch.isfinite(value).all():
            raise ValueError(f"normalization {key} holds NaN or infinity")
    if not (norm["scale"] > 0).all():
        raise ValueError("normalization scale must be > 0 (a zero scale divides by zero)")
    weights = data.get("weights")
    if not isinstance(weights, dict) or not all(torch.is_tensor(v) for v in weights.values()):
        raise ValueError("'weights' must be a dict of tensors")
    if not isinstance(data.get("training", {}), dict):
        raise ValueError("'training' must be a dict")


def load_checkpoint(path, device="cpu") -> LocalScoreModel:
    data = read_checkpoint(path)
    try:
        _check_structure(data)
        state_shape = tuple(data["state_shape"])
        k = int(data["k"])
        schedule = VPSchedule(float(data["schedule"].get("eta", 1e-3)))
        net = build_network(data["arch"], 2 * k + 1, state_shape, schedule)
        net.load_state_dict({n: v.float() if v.is_floating_point() else v for n, v in data["weights"].items()})
        model = LocalScoreModel(net, k, state_shape, data["normalization"]["mean"], data["normalization"]["scale"],
                                schedule, data["system"], data["arch"])
    except (KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"model file {Path(path).name} is inconsistent: {first_line(exc)}") from None
    model.training_info = data.get("training", {})
    model.provenance = data.get("provenance", {}) if isinstance(data.get("provenance"), dict) else {}
    model.source_path = str(Path(path).resolve())
    return model.to(device).eval()


def check_model_for_system(model: LocalScoreModel, system) -> None:
    """Raises CheckpointError when the model was trained for another system or state shape."""
    name = model.system.get("name")
    if name != system.name:
        raise CheckpointError(f"the model was trained for {name}, not for {system.name}")
    if tuple(model.state_shape) != tuple(system.state_shape):
        raise CheckpointError(
            f"the model expects states of shape {tuple(model.state_shape)}, the system has {tuple(system.state_shape)}")


def model_system(model: LocalScoreModel, overrides: Optional[dict] = None):
    """The system a model was trained on (its stored parameters, then ``overrides``), its source
    (a plugin file, a package) loaded first; CheckpointError when that source is missing or the
    stored parameters do not build a system."""
    from ..systems import system_from_config
    from ..systems.plugins import PluginError

    try:
        return system_from_config(model.system, **(overrides or {}))
    except PluginError as exc:
        raise CheckpointError(f"cannot rebuild the model's system: {first_line(exc)}") from None
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise CheckpointError(f"the model's system parameters are unusable: {first_line(exc)}") from None


def load_model_for(system_name: str, path=None, device="cpu", params: Optional[dict] = None) -> LocalScoreModel:
    """The model at ``path`` (default: the shipped model of the system for ``device``), checked to
    fit ``system_name`` (with its stored parameters updated by ``params``); CheckpointError otherwise.

    The one model loader of the command line, the benchmarks and the scripts.
    """
    if path is None and not default_model_path(system_name, device).exists():
        raise CheckpointError(f"no model ships for the system '{system_name}'; train one (train --system "
                              f"{system_name} … --out MODEL.pt) and pass --model MODEL.pt")
    model = load_checkpoint(path or default_model_path(system_name, device), device)
    if model.system.get("name") != system_name:
        raise CheckpointError(f"the model was trained for {model.system.get('name')}, not for {system_name}")
    check_model_for_system(model, model_system(model, params))
    return model
