"""torch.distributed on this CPU: two gloo processes train, average gradients and share sampling.

Each test spawns two processes (``torch.multiprocessing``) that meet through a file
store in ``tmp_path``; every collective has a timeout, so a failing rank ends the
job instead of hanging it.
"""

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

WORLD = 2


def _join(rank, tmp_path, timeout_s=60):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from sda_gui.core import distributed

    return distributed.init_from_env("cpu", timeout_s=timeout_s, init_method=f"file://{tmp_path}/store")


def _spawn(fn, tmp_path, *args):
    mp.spawn(fn, args=(str(tmp_path), *args), nprocs=WORLD, join=True)


# --- training ----------------------------------------------------------------------------------

def _train_worker(rank, tmp_path):
    from sda_gui.core import distributed
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.systems import make_system

    _join(rank, tmp_path)
    system = make_system("lorenz63", burn_in=64)
    data = system.simulate(8, 64, seed=0)
    losses = []
    config = TrainConfig(k=1, arch={"name": "resmlp", "width": 32, "depth": 2}, steps=150, batch_size=64,
                         val_every=50, lr=3e-3, seed=0)
    model, history = train_model(system, data, config, checkpoint_path=f"{tmp_path}/model.pt",
                                 progress=lambda step, total, loss, val: losses.append(loss))
    torch.save({"losses": losses, "history": history["train"], "info": model.training_info,
                "weights": {k: v.clone() for k, v in model.net.state_dict().items()}}, f"{tmp_path}/rank{rank}.pt")
    distributed.shutdown()


def test_two_processes_train_one_model_and_its_loss_falls(tmp_path):
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    _spawn(_train_worker, tmp_path)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["losses"] and not r1["losses"]  # rank 0 alone reports
    assert r0["losses"][-1] < 0.8 * r0["losses"][0]
    assert r0["info"]["world_size"] == WORLD and r0["info"]["effective_batch_size"] == 128
    for key, value in r0["weights"].items():  # averaged gradients keep the replicas identical
        torch.testing.assert_close(value, r1["weights"][key])
    model = load_checkpoint(tmp_path / "model.pt")
    assert model.training_info["steps_done"] == 150


# --- gradients --------------------------------------------------------------------------------

def _batch(rank):
    g = torch.Generator().manual_seed(100 + rank)
    return torch.randn(16, 3, 3, generator=g), torch.rand(16, generator=g), torch.randn(16, 3, 3, generator=g)


def _tiny_loss():
    from sda_gui.core.diffusion.checkpoint import build_model
    from sda_gui.core.diffusion.training import DSMLoss
    from sda_gui.core.systems import make_system

    torch.manual_seed(0)
    model = build_model(make_system("lorenz63"), 1, {"name": "resmlp", "width": 16, "depth": 2})
    return DSMLoss(model.net, model.schedule)


def _grad_worker(rank, tmp_path):
    from torch.nn.parallel import DistributedDataParallel

    _join(rank, tmp_path)
    ddp = DistributedDataParallel(_tiny_loss())
    ddp(*_batch(rank)).backward()
    if rank == 0:
        torch.save({n: p.grad.clone() for n, p in ddp.module.named_parameters()}, f"{tmp_path}/grads.pt")
    torch.distributed.destroy_process_group()


def test_averaged_gradients_equal_one_process_on_the_concatenated_batch(tmp_path):
    _spawn(_grad_worker, tmp_path)
    ddp_grads = torch.load(tmp_path / "grads.pt")
    single = _tiny_loss()
    x, t, e = (torch.cat(parts) for parts in zip(_batch(0), _batch(1)))
    single(x, t, e).backward()
    for name, p in single.named_parameters():
        torch.testing.assert_close(ddp_grads[name], p.grad, rtol=1e-4, atol=1e-6)


# --- sampling ---------------------------------------------------------------------------------

def _problem():
    from sda_gui.core.observation import every_nth_state_mask, synthesize
    from sda_gui.core.systems import make_system

    system = make_system("lorenz63")
    truth = system.simulate(1, 16, seed=5)[0]
    return system, synthesize(truth.numpy(), every_nth_state_mask(16, (3,), 4, [0]), 0.4, seed=2)


def _draw(n, seed):
    from sda_gui.core.diffusion.checkpoint import default_model_path, load_checkpoint
    from sda_gui.core.methods import run_method

    system, obs = _problem()
    model = load_checkpoint(default_model_path("lorenz63").with_name("lorenz63_k3.pt"))   # a 7-state window fits 16 states
    return run_method("sda", system, obs, n, {"steps": 3, "corrections": 0}, model=model, seed=seed).members


def _sample_worker(rank, tmp_path, n):
    from sda_gui.core import distributed

    info = _join(rank, tmp_path)
    out = distributed.run_sharded(_draw, n, 7, info)
    if info.is_main:
        torch.save(out, f"{tmp_path}/samples.pt")
    else:
        assert out is None
    distributed.shutdown()


def test_sharded_sampling_equals_single_runs_with_the_rank_seeds(tmp_path):
    from sda_gui.core.distributed import shard_sizes

    _spawn(_sample_worker, tmp_path, 5)
    gathered = torch.load(tmp_path / "samples.pt")
    n0, n1 = shard_sizes(5, WORLD)
    assert (n0, n1) == (3, 2)
    torch.testing.assert_close(gathered, torch.cat([_draw(n0, 7), _draw(n1, 8)]))


# --- a rank that fails ------------------------------------------------------------------------

def _crash_worker(rank, tmp_path):
    from sda_gui.core import distributed

    info = _join(rank, tmp_path, timeout_s=120)
    if rank == 1:
        raise RuntimeError("rank 1 fails on purpose")
    for _ in range(1000):  # rank 1 never joins: the collective must fail, not hang
        distributed.any_rank(False, info)


def test_a_failing_rank_stops_the_job_instead_of_hanging(tmp_path):
    with pytest.raises(Exception, match="rank 1 fails on purpose"):
        _spawn(_crash_worker, tmp_path)


# --- the command line under torchrun ------------------------------------------------------------

def test_torchrun_trains_through_the_command_line(tmp_path):
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--nproc_per_node=2", "-m", "sda_gui", "train", "--system", "lorenz63", "--param", "burn_in=16",
           "--trajectories", "4", "--length", "32", "--k", "1", "--width", "16", "--depth", "1", "--steps", "20",
           "--batch-size", "16", "--val-every", "10", "--threads", "1", "--out", str(tmp_path / "m.pt")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "effective batch 32" in done.stderr
    assert done.stdout.count("trained") == 1  # rank 0 alone reports the result
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    assert load_checkpoint(tmp_path / "m.pt").training_info["world_size"] == 2
