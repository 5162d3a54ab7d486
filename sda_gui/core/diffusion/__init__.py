"""Diffusion prior: schedule, window networks, local score composition, training,
guidance and the sampler."""

from .checkpoint import CheckpointError, build_model, check_model_for_system, default_model_path, load_checkpoint, save_checkpoint
from .local_score import LocalScoreModel, fold_windows, unfold_windows
from .sampler import Cancelled, Sampler
from .schedule import VPSchedule

__all__ = ["CheckpointError", "build_model", "check_model_for_system", "default_model_path", "load_checkpoint",
           "save_checkpoint", "LocalScoreModel", "fold_windows", "unfold_windows", "Cancelled", "Sampler", "VPSchedule"]
