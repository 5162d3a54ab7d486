"""Checkpoints: the weights plus everything needed to rebuild and check a model.

A checkpoint is a ``torch.save`` dict with ``format``, ``system`` (name and
parameters), ``state_shape``, ``k``, ``arch``, ``normalization`` (mean, scale),
``schedule``, ``training`` (settings, data seed, losses) and ``weights``
(optionally stored in float16 to keep shipped files small). A resumable training
checkpoint also carries ``train_state`` (optimiser, learning-rate schedule, step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from .local_score import LocalScoreModel
from .networks import build_network
from .schedule import VPSchedule

__all__ = ["CheckpointError", "save_checkpoint", "load_checkpoint", "build_model", "default_model_path",
           "shipped_model_paths",
           "check_model_for_system", "FORMAT"]

FORMAT = "sda-studio-checkpoint/1"
RESOURCES = Path(__file__).resolve().parents[3] / "resources" / "models"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line for the user."""


#: systems whose best shipped model is too slow for a CPU: their default on a CUDA device
GPU_DEFAULTS = {"kolmogorov": "kolmogorov_unet.pt"}


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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read model file {path.name}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path.name} is not an SDA Studio model checkpoint")
    return data


def load_checkpoint(path, device="cpu") -> LocalScoreModel:
    data = read_checkpoint(path)
    try:
        state_shape = tuple(data["state_shape"])
        k = int(data["k"])
        schedule = VPSchedule(data["schedule"].get("eta", 1e-3))
        net = build_network(data["arch"], 2 * k + 1, state_shape, schedule)
        net.load_state_dict({n: v.float() if v.is_floating_point() else v for n, v in data["weights"].items()})
        model = LocalScoreModel(net, k, state_shape, data["normalization"]["mean"], data["normalization"]["scale"],
                                schedule, data["system"], data["arch"])
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise CheckpointError(f"model file {Path(path).name} is inconsistent: {str(exc).splitlines()[0]}") from None
    model.training_info = data.get("training", {})
    return model.to(device).eval()


def check_model_for_system(model: LocalScoreModel, system) -> None:
    """Raises CheckpointError when the model was trained for another system or state shape."""
    name = model.system.get("name")
    if name != system.name:
        raise CheckpointError(f"the model was trained for {name}, not for {system.name}")
    if tuple(model.state_shape) != tuple(system.state_shape):
        raise CheckpointError(
            f"the model expects states of shape {tuple(model.state_shape)}, the system has {tuple(system.state_shape)}")
