"""SDA's options and score models for the classical benchmark table (``bench_classical``).

SDA runs on the same ``PROBLEMS`` windows as the classical methods (same truths,
observations and seeds ``w`` of window ``w``); ``--samples`` members per window drawn
by the reverse diffusion of a score model, one per system: the most accurate shipped one
(``lorenz96_large.pt``, ``lorenz63.pt``) unless ``--model PATH`` names one (repeatable, one
per system; a checkpoint is matched to a problem by the system it was trained on).
The SDA settings not given on the command line are the method's per-system defaults
(``core.methods.sda``). Example, the protocol sizes on every problem::

    python -m sda_gui.bench_classical --methods sda --windows 4 --samples 256 --steps 256 \\
        --corrections 1 [--gamma G --tau T --guidance sda|mmps] [--model PATH] --threads 1
"""

from __future__ import annotations

import argparse

from sda_gui.core.diffusion.checkpoint import default_model_path, load_checkpoint
from sda_gui.core.diffusion.local_score import LocalScoreModel

__all__ = ["add_options", "sda_overrides", "models_from", "model_for", "SDA_OPTIONS"]

#: command-line option → (SDA setting, type)
SDA_OPTIONS = {"steps": int, "corrections": int, "guidance": str, "tau": float, "gamma": float,
               "cg_iterations": int, "final_corrections": int, "dynamics_std": float, "dynamics_gamma": float,
               "fold": str, "refine_iterations": int, "refine_model_error": float,
               "refine_stages": int}


def add_options(parser: argparse.ArgumentParser) -> None:
    """The SDA options of the table: samples, sampler settings, models."""
    group = parser.add_argument_group("SDA (with --methods sda)")
    group.add_argument("--samples", type=int, default=256, help="posterior samples per window (default: 256)")
    for name, kind in SDA_OPTIONS.items():
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None,
                           help=f"SDA's {name} (default: the method's per-system default)")
    group.add_argument("--model", action="append", default=[],
                       help="score-model checkpoint for its system (repeatable; default: the shipped one)")


def sda_overrides(opts) -> dict:
    """The SDA settings given on the command line (the others stay per-system defaults)."""
    return {name: getattr(opts, name) for name in SDA_OPTIONS if getattr(opts, name, None) is not None}


def models_from(paths) -> dict:
    """``{system name: LocalScoreModel}`` of the checkpoints ``paths`` (one per system)."""
    models = {}
    for path in paths or ():
        model = load_checkpoint(path)
        name = model.system.get("name", "")
        if name in models:
            raise ValueError(f"two models for system '{name}': give one --model per system")
        models[name] = model
    return models


def model_for(system_name: str, model=None) -> LocalScoreModel:
    """``model`` (a ``LocalScoreModel`` or a checkpoint path), else the system's most accurate shipped
    model: its GPU default where it has one (``lorenz96_large.pt``), else ``<name>.pt``."""
    if isinstance(model, LocalScoreModel):
        return model
    return load_checkpoint(model if model is not None else default_model_path(system_name, "cuda"))
