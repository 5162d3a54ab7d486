"""Denoising score matching on random windows of trajectories.

    t ~ U(0, 1),   x(t) = μ(t) x_W + σ(t) ε,   loss = ‖ε_φ(x(t), t) − ε‖²

``x_W`` are windows of ``2k+1`` consecutive states cut at random from the
(normalised) training trajectories, passed through the system's ``augment``
(its exact symmetries, if it declares any). A network that predicts the clean
window (``arch["precondition"]``) has its own loss, ``Preconditioned.dsm_loss``.
AdamW with a linear learning-rate decay to zero; a validation loss on held-out trajectories with fixed windows, times and
noise, so it is comparable from one report to the next. Training can be
resumed from a checkpoint that carries ``train_state``, or start from the weights
of another model of the same system and architecture (``init_from``: fine-tuning,
e.g. a shipped fp16 model on more data, with a fresh optimiser and schedule).
With ``ema`` > 0 the model validated and saved is the exponential moving average of
the weights (``core.diffusion.ema``); the optimiser keeps stepping the raw weights.

Under ``torchrun`` (a process group is initialised, ``core.distributed``) the loss
module is wrapped in DistributedDataParallel: each rank draws its own windows and
the gradients are averaged, an effective batch of ``world_size × batch_size``;
rank 0 alone validates, reports and writes checkpoints, and a stop on any rank
stops all of them at the same step.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from pathlib import Path
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from .. import distributed
from .checkpoint import CheckpointError, build_model, read_checkpoint, save_checkpoint
from .ema import WeightAverage
from .preconditioning import Preconditioned

__all__ = ["TrainConfig", "train_model", "default_arch", "window_batches", "DSMLoss"]

# progress(step, total, train_loss, val_loss or None)
TrainProgress = Callable[[int, int, float, Optional[float]], None]


def default_arch(system) -> dict:
    """The network family that suits a system's state shape."""
    ndim = len(system.state_shape)
    if ndim == 3:
        return {"name": "unet", "channels": [32, 64, 128], "blocks": 2, "precondition": True}
    if ndim == 1 and system.state_shape[0] > 8:
        return {"name": "ringconv", "width": 64, "depth": 4, "kernel": 5}
    return {"name": "resmlp", "width": 256, "depth": 5}


@dataclass
class TrainConfig:
    k: int = 2
    arch: dict = field(default_factory=dict)
    steps: int = 10000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-3
    val_fraction: float = 0.1
    val_every: int = 500
    device: str = "cpu"
    seed: int = 0
    data_seed: Optional[int] = None
    amp: bool = False          # bf16 autocast (CUDA)
    compile: bool = False      # torch.compile the network
    save_every: int = 0        # resumable checkpoint every n steps (0: never)
    ema: float = 0.0           # decay of the weights' moving average that is saved (0: the last weights)


def window_batches(data: torch.Tensor, k: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    """One batch of random windows ``(batch, 2k+1, *s)`` from trajectories ``(M, T, *s)``."""
    m, length = data.shape[:2]
    w = 2 * k + 1
    traj = torch.randint(0, m, (batch,), generator=gen, device=data.device)
    start = torch.randint(0, length - w + 1, (batch,), generator=gen, device=data.device)
    idx = start[:, None] + torch.arange(w, device=data.device)
    return data[traj[:, None], idx]


class DSMLoss(nn.Module):
    """The denoising loss of a batch as a module, so DistributedDataParallel can wrap it.

    ``forward(x, t, eps)`` is ``‖ε_φ(μ x + σ ε, t) − ε‖²`` (or the preconditioned
    network's own loss); ``fwd`` is the network's (possibly compiled) forward.
    """

    def __init__(self, net: nn.Module, schedule, amp: bool = False, fwd=None):
        super().__init__()
        self.net = net
        self.schedule = schedule
        self.amp = bool(amp)
        object.__setattr__(self, "_fwd", fwd if fwd is not None else net)  # not a second submodule

    def forward(self, x: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        if isinstance(self.net, Preconditioned):
            return self.net.dsm_loss(x, t, eps, self.amp)
        shape = (-1,) + (1,) * (x.ndim - 1)
        mu, sigma = self.schedule(t.view(shape))
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.amp):
            pred = self._fwd(mu * x + sigma * eps, t)
        return (pred.float() - eps).square().mean()


def _dsm_loss(loss_module, x, gen):
    t = torch.rand(x.shape[0], generator=gen, device=x.device)
    eps = torch.randn(x.shape, generator=gen, device=x.device)
    return loss_module(x, t, eps)


def _initial_weights(path, system, config: "TrainConfig") -> tuple[dict, dict]:
    """The weights of ``path`` in float32 and where they come from; ``config`` takes the
    model's window and architecture."""
    saved = read_checkpoint(path)
    if saved.get("system", {}).get("name") != system.name:
        raise CheckpointError(f"{path} is a model of {saved.get('system', {}).get('name') or 'another system'}, "
                              f"not of {system.name}")
    if tuple(saved.get("state_shape", ())) != tuple(system.state_shape):
        raise CheckpointError(f"{path} was trained on states of shape {tuple(saved.get('state_shape', ()))}, "
                              f"these are {tuple(system.state_shape)}")
    config.k = int(saved["k"])
    config.arch = dict(saved["arch"])
    weights = {k: v.float() if v.is_floating_point() else v for k, v in saved["weights"].items()}
    before = saved.get("training", {})
    # what the model had been through, kept in the new model's training record
    origin = {"init_from": Path(path).name,
              "init_steps_done": int(before.get("init_steps_done", 0)) + int(before.get("steps_done") or 0)}
    return weights, origin


def train_model(system, trajectories, config: TrainConfig, progress: Optional[TrainProgress] = None,
                should_stop: Optional[Callable[[], bool]] = None, checkpoint_path=None, resume_from=None,
                init_from=None):
    """Trains a local score model on physical trajectories ``(M, T, *state_shape)``.

    Returns ``(model, history)``; ``history`` holds ``step``, ``train``, ``val`` lists
    and the wall time. ``should_stop`` returning True ends training early (the model
    trained so far is returned and ``history["stopped"]`` is True).
    """
    dist_info = distributed.current()
    device = distributed.rank_device(config.device, dist_info)
    data = torch.as_tensor(np.asarray(trajectories) if not torch.is_tensor(trajectories) else trajectories,
                           dtype=torch.float32)
    if data.ndim != 2 + len(system.state_shape) or tuple(data.shape[2:]) != tuple(system.state_shape):
        raise ValueError(f"trajectories must have shape (M, T, {', '.join(map(str, system.state_shape))}), "
                         f"got {tuple(data.shape)}")
    if not torch.isfinite(data).all():
        raise ValueError("trajectories contain NaN or infinity")
    init, origin = _initial_weights(init_from, system, config) if init_from is not None else (None, {})
    w = 2 * config.k + 1
    if data.shape[1] < w:
        raise ValueError(f"trajectories of {data.shape[1]} states are shorter than a window of {w}")
    arch = dict(config.arch or default_arch(system))
    if arch.get("precondition") and "sigma_data" not in arch:
        # the preconditioning's Gaussian part should match the data it will denoise
        arch["sigma_data"] = round(float(system.normalize(data).std()), 4)
    config.arch = arch
    torch.manual_seed(config.seed)  # the initial weights too: one seed, one model
    model = build_model(system, config.k, arch).to(device)
    if init is not None:
        model.net.load_state_dict(init)
    data = model.normalize(data.to(device))
    augment = getattr(system, "augment", None)

    n_val = int(round(config.val_fraction * data.shape[0])) if data.shape[0] > 1 else 0
    train_data, val_data = data[: data.shape[0] - n_val], data[data.shape[0] - n_val:]

    # each rank its own stream of windows (rank 0's is the single-process stream)
    gen = torch.Generator(device=device).manual_seed(distributed.rank_seed(config.seed, dist_info))
    net = model.net
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: max(0.0, 1 - i / config.steps))
    history = {"step": [], "train": [], "val": [], "stopped": False}
    start_step = 0
    ema = None
    if resume_from is not None:
        saved = read_checkpoint(resume_from)
        if "train_state" not in saved:
            raise CheckpointError("this checkpoint cannot resume training (no optimiser state)")
        # a run with an average saved the average as its weights and the raw weights beside them
        raw = saved["train_state"].get("raw_weights")
        net.load_state_dict(raw if raw is not None else saved["weights"])
        opt.load_state_dict(saved["train_state"]["optimizer"])
        sched.load_state_dict(saved["train_state"]["scheduler"])
        start_step = int(saved["train_state"]["step"])
        history = dict(saved["train_state"]["history"], stopped=False)
        gen.manual_seed(distributed.rank_seed(config.seed, dist_info) + start_step)
        if config.ema > 0:
            ema = WeightAverage(net, config.ema, updates=start_step)
            if raw is not None:
                ema.load_shadow(saved["weights"], net, saved["train_state"].get("ema", {}).get("updates", start_step))
    if config.ema > 0 and ema is None:
        ema = WeightAverage(net, config.ema)
    averaged = ema.applied if ema is not None else nullcontext

    fwd = net
    if config.compile:
        if isinstance(net, Preconditioned):
            # compile the inner network's forward so the state-dict names stay as they are
            net.net.forward = torch.compile(net.net.forward)
        else:
            fwd = torch.compile(net)
    loss_module = DSMLoss(net, model.schedule, config.amp, fwd)
    train_loss = loss_module
    if dist_info.enabled:
        from torch.nn.parallel import DistributedDataParallel

        # DDP broadcasts rank 0's weights at construction and averages gradients in backward
        ids = [device.index] if device.type == "cuda" else None
        train_loss = DistributedDataParallel(loss_module, device_ids=ids)
    val_batch = None
    if n_val and dist_info.is_main:
        vgen = torch.Generator(device=device).manual_seed(12345)
        val_batch = [window_batches(val_data, config.k, 1024, vgen) for _ in range(4)]

    def validate():
        if val_batch is None:
            return None
        vgen = torch.Generator(device=device).manual_seed(54321)
        net.eval()
        total = 0.0
        with torch.no_grad(), averaged():
            for b in val_batch:
                if should_stop is not None and should_stop():
                    net.train()
                    return None  # a stop during validation takes effect before the next batch
                total += _dsm_loss(loss_module, b, vgen).item()
        net.train()
        return total / len(val_batch)

    def settings():
        info = asdict(config)
        info.update(trajectories=list(data.shape), n_val=n_val, final_train_loss=history["train"][-1:] or None,
                    final_val_loss=history["val"][-1:] or None, steps_done=step, world_size=dist_info.world_size,
                    effective_batch_size=config.batch_size * dist_info.world_size, **origin)
        return info

    def save(final: bool):
        if checkpoint_path is None or not dist_info.is_main:
            return
        state = None if final else {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                                    "step": step, "history": history}
        if state is not None and ema is not None:
            # the file's weights are the average (a usable model); resuming needs the raw ones too
            state.update(raw_weights={k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
                         ema=ema.state_dict())
            with averaged():
                save_checkpoint(model, checkpoint_path, settings(), train_state=state)
            return
        save_checkpoint(model, checkpoint_path, settings(), train_state=state)

    t0 = time.perf_counter()
    running = None
    last_loss = None
    net.train()
    step = start_step
    report_every = max(1, min(100, config.steps // 100))
    for step in range(start_step + 1, config.steps + 1):
        stop = should_stop is not None and should_stop()
        if dist_info.enabled:
            stop = distributed.any_rank(stop, dist_info)
        if stop:
            history["stopped"] = True
            step -= 1
            if last_loss is not None and (not history["step"] or history["step"][-1] != step):
                # the loss of the last step done, so a run stopped between reports still shows one
                value = float(last_loss)
                if math.isfinite(value):
                    running = value if running is None else 0.9 * running + 0.1 * value
                    history["step"].append(step)
                    history["train"].append(running)
                    history["val"].append(None)
                    if progress is not None and dist_info.is_main:
                        progress(step, config.steps, running, None)
            break
        batch = window_batches(train_data, config.k, config.batch_size, gen)
        if augment is not None:
            batch = augment(batch, gen)
        loss = _dsm_loss(train_loss, batch, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if ema is not None:
            ema.update()
        last_loss = loss.detach()
        check = step % config.val_every == 0 or step == config.steps
        if check or step % report_every == 0:
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"training diverged at step {step} (loss {value}); lower the learning rate")
            running = value if running is None else 0.9 * running + 0.1 * value
            val = validate() if check else None
            history["step"].append(step)
            history["train"].append(running)
            history["val"].append(val)
            if progress is not None and dist_info.is_main:
                progress(step, config.steps, running, val)
        if config.save_every and step % config.save_every == 0 and step < config.steps:
            save(final=False)
    history["seconds"] = history.get("seconds", 0.0) + time.perf_counter() - t0
    model.training_info = settings()
    if ema is not None and not history["stopped"]:
        ema.copy_to_net()
    save(final=not history["stopped"])
    if ema is not None:
        ema.copy_to_net()  # the model returned is the average, as the one saved
    model.eval()
    return model, history
