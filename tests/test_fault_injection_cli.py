"""Faults against the command line and the core writers: the user's files survive, every failure is one line.

- **Full disk**: each writer (``Observation.save``, ``save_trajectories``,
  ``save_checkpoint``, and through the CLI ``simulate``, ``train``, ``assimilate``
  and ``evaluate`` over existing outputs) runs under ``RLIMIT_FSIZE`` in a
  subprocess with ``SIGXFSZ`` ignored, so ``write()`` fails with ``EFBIG`` as on a
  full disk. Expected: one line (``WriteError`` from core; exit 2 and ``error:``
  from the CLI), the previous file byte for byte, no temporary left, and a clean
  exit of the process afterwards (HDF5 used to segfault there).
- **Memory limit**: runs too large for an ``RLIMIT_AS`` headroom, refused by the
  estimate or failing in an allocation: one ``error: out of memory`` line, exit 2.
- **SIGKILL during a writer**: the target always loads, old or new.
- **Damaged inputs**: observation, trajectory and checkpoint files truncated,
  bit-flipped and mutated in type and shape (generated from good files): exit 2
  and one line, or a correct run where the damage left a valid file.

Each group prints ``tried / clean / crashed / lost`` (run ``pytest -s`` to see it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sda_gui.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
L = 12

RUNNER = r'''
import contextlib, io, json, resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # write() then fails with EFBIG, as on a full disk
import numpy as np, torch
torch.set_num_threads(1)
torch.zeros(4).sum()
from sda_gui.cli import main
from sda_gui.core.datasets import save_trajectories
from sda_gui.core.diffusion.checkpoint import load_checkpoint, save_checkpoint
from sda_gui.core.observation import Observation

def write_observation(path):
    mask = np.ones((64, 40), dtype=bool)
    Observation(mask, np.random.default_rng(0).normal(size=mask.shape), 0.5).save(path)

WRITERS = {
    "observation": write_observation,
    "trajectories": lambda path: save_trajectories(path, np.random.default_rng(0).normal(size=(8, 64, 40))),
    "checkpoint": lambda path: save_checkpoint(load_checkpoint(sys.argv[2]), path),
}

def vm_size():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:"))

INF = resource.RLIM_INFINITY
results = []
for case in json.load(open(sys.argv[1])):
    err = io.StringIO()
    try:
        if case.get("fsize"):
            resource.setrlimit(resource.RLIMIT_FSIZE, (case["fsize"], INF))
        if case.get("headroom"):
            resource.setrlimit(resource.RLIMIT_AS, (vm_size() + case["headroom"], INF))
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if "argv" in case:
                outcome = main(case["argv"])
            else:
                WRITERS[case["writer"]](case["path"])
                outcome = "returned"
    except Exception as exc:
        outcome = type(exc).__name__
        err.write(str(exc))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (INF, INF))
        resource.setrlimit(resource.RLIMIT_AS, (INF, INF))
    results.append({"outcome": outcome, "err": err.getvalue()})
print(json.dumps(results))
'''


def _count(label, verdicts):
    tried = len(verdicts)
    clean = sum(v == "clean" for v in verdicts.values())
    crashed = sum(v.startswith("crashed") for v in verdicts.values())
    lost = sum(v == "lost" for v in verdicts.values())
    print(f"\n{label}: tried {tried} / clean {clean} / crashed {crashed} / lost {lost}")
    bad = {k: v for k, v in verdicts.items() if v != "clean"}
    assert not bad, bad


def _one_line(text: str, prefix: str = "") -> bool:
    lines = [line for line in text.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in text


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A tiny model, an observation, a trajectory file: the inputs every fault is made from."""
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.diffusion.checkpoint import save_checkpoint
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import make_system

    d = tmp_path_factory.mktemp("good")
    system = make_system("lorenz63", burn_in=16)
    data = system.simulate(4, 24, seed=0)
    save_trajectories(d / "data.h5", data, system, {"seed": 0})
    np.savez(d / "data.npz", trajectories=data.numpy())
    model, _ = train_model(system, data, TrainConfig(k=1, arch={"name": "resmlp", "width": 8, "depth": 1}, steps=3,
                                                     batch_size=16, val_every=3))
    save_checkpoint(model, d / "model.pt", model.training_info)
    mask = np.zeros((L, 3), dtype=bool)
    mask[::3, 0] = True
    obs = Observation(mask, np.where(mask, 1.0, 0.0), 0.5)
    obs.save(d / "obs.npz")
    obs.save(d / "obs.h5")
    np.savez(d / "truth.npz", truth=data[0, :L].numpy())
    return SimpleNamespace(truth=d / "truth.npz", dir=d, model=d / "model.pt", obs=d / "obs.npz", obs_h5=d / "obs.h5", data=d / "data.h5",
                           data_npz=d / "data.npz")


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# full disk and memory limits: one subprocess runs every case in turn
# ---------------------------------------------------------------------------------------------


def test_full_disk_and_memory_limits(good, tmp_path):
    cases, checks = [], []

    def add(name, case, out_files, prefix):
        folder = tmp_path / name
        folder.mkdir()
        for rel, content in out_files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(content)
        case = json.loads(json.dumps(case).replace("@DIR", str(folder)))
        cases.append(case)
        checks.append((name, folder, _snapshot_tree(folder), prefix))

    old = b"the previous file, which must survive\n" * 4
    for writer, suffix in (("observation", ".npz"), ("observation", ".h5"), ("trajectories", ".h5"),
                           ("checkpoint", ".pt")):
        add(f"{writer}{suffix}", {"writer": writer, "path": f"@DIR/out{suffix}", "fsize": 2048},
            {f"out{suffix}": old}, "WriteError")
    bpf = ["assimilate", "--system", "lorenz63", "--observations", str(good.obs), "--method", "bpf", "--samples",
           "64", "--particles", "128", "--device", "cpu", "--threads", "1", "-q"]
    add("assimilate.npz", {"argv": bpf + ["--out", "@DIR/post.npz"], "fsize": 2048}, {"post.npz": old}, "error: ")
    add("assimilate.h5", {"argv": bpf + ["--out", "@DIR/post.h5"], "fsize": 2048}, {"post.h5": old}, "error: ")
    add("simulate.h5", {"argv": ["simulate", "--system", "lorenz63", "--trajectories", "16", "--length", "64",
                                 "--param", "burn_in=8", "--device", "cpu", "--threads", "1", "-q",
                                 "--out", "@DIR/sim.h5"],
                        "fsize": 2048}, {"sim.h5": old}, "error: ")
    add("train.pt", {"argv": ["train", "--data", str(good.data), "--k", "1", "--steps", "2", "--width", "8",
                              "--depth", "1", "--batch-size", "8", "--device", "cpu", "--threads", "1",
                              "-q", "--out", "@DIR/m.pt"], "fsize": 2048}, {"m.pt": old}, "error: ")
    add("evaluate-report", {"argv": ["evaluate", "--models", str(good.model), "--cases", "1", "--samples", "4",
                                     "--particles", "32", "--steps", "1", "--corrections", "0", "--protocols",
                                     "sparse", "--device", "cpu", "--threads", "1", "-q", "--out-dir", "@DIR/report"],
                            "fsize": 2048},
        {"report/evaluation.md": old, "report/evaluation.csv": old, "report/evaluation.png": old}, "error: ")
    add("compare-report", {"argv": ["compare", "--system", "lorenz63", "--observations", str(good.obs), "--truth",
                                    str(good.truth), "--methods", "bpf", "--samples", "4", "--particles", "32",
                                    "--device", "cpu", "--threads", "1", "-q", "--out-dir", "@DIR/cmp"],
                           "fsize": 2048},
        {"cmp/compare.md": old, "cmp/compare.csv": old, "cmp/compare.png": old}, "error: ")
    # memory: refused by the estimate, and an allocation past it
    add("memory-assimilate", {"argv": ["assimilate", "--system", "lorenz63", "--observations", str(good.obs),
                                       "--model", str(good.model), "--samples", "5000000", "--device", "cpu",
                                       "--threads", "1", "-q", "--out", "@DIR/p.npz"], "headroom": 2 ** 29},
        {}, "error: ")
    add("memory-simulate", {"argv": ["simulate", "--system", "lorenz63", "--length", "10000000", "--device", "cpu",
                                     "--threads", "1", "-q", "--out", "@DIR/s.h5"], "headroom": 2 ** 29}, {}, "error: ")
    add("memory-allocation", {"argv": ["bench", "solver", "--resolution", "16384", "--device", "cpu",
                                       "--threads", "1", "-q"], "headroom": 2 ** 29}, {}, "error: ")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(cases))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    proc = subprocess.run([sys.executable, str(runner), str(spec), str(good.model)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])     # no crash at exit (HDF5 segfaulted)
    assert proc.stderr.strip() == "", proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    verdicts = {}
    for (name, folder, before, prefix), result in zip(checks, results):
        after = _snapshot_tree(folder)
        expected_outcome = prefix if prefix == "WriteError" else 2
        if {k: v for k, v in after.items() if k in before} != before:
            verdicts[name] = "lost"
        elif result["outcome"] != expected_outcome or not _one_line(result["err"], "" if prefix == "WriteError"
                                                                     else prefix) or set(after) != set(before):
            verdicts[name] = f"crashed: {result}, new files {sorted(set(after) - set(before))}"
        else:
            verdicts[name] = "clean"
            if name.startswith("memory"):
                assert "memory" in result["err"], result
    _count("full disk and memory limits", verdicts)


def _snapshot_tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# SIGKILL during a writer: the target always loads
# ---------------------------------------------------------------------------------------------

KILL_WRITER = r'''
import sys, numpy as np
kind, path = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
if kind == "trajectories":
    from sda_gui.core.datasets import save_trajectories
    write = lambda i: save_trajectories(path, np.full((16, 256, 256), float(i), dtype=np.float32))
elif kind == "posterior":
    from sda_gui.cli.files import write_posterior
    write = lambda i: write_posterior(path, np.full((64, 256, 64), float(i), dtype=np.float32), {"i": i})
elif kind == "observation":
    from sda_gui.core.observation import Observation
    write = lambda i: Observation(np.ones((64, 4096), bool), rng.normal(size=(64, 4096)) + i, 0.5).save(path)
else:
    import torch
    from sda_gui.core.diffusion.checkpoint import build_model, save_checkpoint
    from sda_gui.core.systems import make_system
    model = build_model(make_system("lorenz96"), 2, {"name": "ringconv", "width": 128, "depth": 4, "kernel": 5})
    write = lambda i: save_checkpoint(model, path, {"i": i})
write(0)
print("ready", flush=True)
i = 1
while True:
    write(i)
    i += 1
'''


def _loads(kind, path):
    if kind == "trajectories":
        from sda_gui.core.datasets import load_trajectories

        load_trajectories(path)
    elif kind == "posterior":
        with np.load(path) as f:
            assert f["samples"].shape == (64, 256, 64)
            json.loads(str(f["settings"]))
    elif kind == "observation":
        from sda_gui.core.observation import Observation

        Observation.load(path).validate()
    else:
        from sda_gui.core.diffusion.checkpoint import load_checkpoint

        load_checkpoint(path)


# writers that import torch pay seconds per process: one kill each
@pytest.mark.parametrize("kind,suffix,kills", [("trajectories", ".h5", 2), ("posterior", ".npz", 2),
                                               ("observation", ".npz", 1), ("checkpoint", ".pt", 1)])
def test_sigkill_during_a_writer_leaves_a_loadable_file(kind, suffix, kills, tmp_path):
    target = tmp_path / f"target{suffix}"
    script = tmp_path / "writer.py"
    script.write_text(KILL_WRITER)
    verdicts = {}
    for attempt in range(kills):
        proc = subprocess.Popen([sys.executable, str(script), kind, str(target)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            # kill while a temporary exists: the writer is between creating it and the rename
            deadline = time.monotonic() + 60
            while not any(p.name.startswith(".") for p in tmp_path.iterdir()) and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(0.002 * attempt)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
        try:
            _loads(kind, target)
            verdicts[f"{kind}-{attempt}"] = "clean"
        except Exception as exc:  # noqa: BLE001 - any failure to load is lost work
            verdicts[f"{kind}-{attempt}"] = "lost"
            print(kind, attempt, exc)
        for p in tmp_path.iterdir():
            if p.name.startswith("."):
                p.unlink()                   # the killed writer's temporary (a kill cannot clean up)
    _count(f"SIGKILL during {kind} writes", verdicts)


# ---------------------------------------------------------------------------------------------
# damaged inputs, generated from good files: in-process, fast
# ---------------------------------------------------------------------------------------------


def _truncations(data: bytes) -> dict:
    n = len(data)
    cuts = {"empty": b"", "1-byte": data[:1], "10%": data[: n // 10], "half": data[: n // 2], "minus-1": data[:-1]}
    flipped = bytearray(data)
    flipped[n // 2] ^= 0xFF
    cuts["bit-flip"] = bytes(flipped)
    cuts["garbage-tail"] = data + b"\x00garbage" * 8
    return cuts


def _obs_mutations(d: Path) -> dict:
    mask = np.zeros((L, 3), dtype=bool)
    mask[::3, 0] = True
    values = np.where(mask, 1.0, 0.0)
    base = {"mask": mask, "values": values, "std": np.float64(0.5)}
    variants = {
        "mask-float": {"mask": np.full((L, 3), 0.5)}, "mask-scalar": {"mask": np.array(True)},
        "mask-1d": {"mask": np.ones(L, dtype=bool)}, "mask-text": {"mask": np.array([["a"] * 3] * L)},
        "mask-empty": {"mask": np.zeros((L, 3), dtype=bool)}, "mask-zero-length": {"mask": np.zeros((0, 3), bool),
                                                                                 "values": np.zeros((0, 3))},
        "values-shape": {"values": np.ones((L, 2))}, "values-text": {"values": np.array([["x"] * 3] * L)},
        "values-nan": {"values": np.full((L, 3), np.nan)}, "values-inf": {"values": np.full((L, 3), np.inf)},
        "std-negative": {"std": np.float64(-1)}, "std-zero": {"std": np.float64(0)},
        "std-nan": {"std": np.float64(np.nan)}, "std-shape": {"std": np.ones((2, 2))},
        "std-text": {"std": np.array("wide")}, "operator-foo": {"operator": np.array("foo:3")},
        "operator-number": {"operator": np.array(3)}, "operator-list": {"operator": np.array(["a", "b"])},
        "operator-coarsen-3": {"operator": np.array("coarsen:2")}, "state-shape": {"mask": np.ones((L, 4), bool),
                                                                                   "values": np.ones((L, 4))},
        "too-short": {"mask": mask[:2], "values": values[:2]}, "no-values": {"values": None},
        "no-mask": {"mask": None}, "values-complex": {"values": values + 1j},
    }
    out = {}
    for name, change in variants.items():
        data = {k: v for k, v in {**base, **change}.items() if v is not None}
        path = d / f"obs-{name}.npz"
        np.savez(path, **data)
        out[name] = path
    return out


def _ckpt_mutations(d: Path, good_model: Path) -> dict:
    payload = torch.load(good_model, weights_only=True)

    def mutate(**changes):
        p = dict(payload)
        for key, value in changes.items():
            if "." in key:
                outer, inner = key.split(".")
                p[outer] = dict(p[outer], **{inner: value})
            else:
                p[key] = value
        return p

    variants = {
        "system-string": mutate(system="lorenz63"), "system-none": mutate(system=None),
        "system-params-bogus": mutate(system={"name": "lorenz63", "params": {"foo": 1}}),
        "system-params-text": mutate(system={"name": "lorenz63", "params": {"rho": "abc"}}),
        "system-params-list": mutate(system={"name": "lorenz63", "params": [1, 2]}),
        "schedule-none": mutate(schedule=None), "schedule-eta-negative": mutate(schedule={"eta": -1.0}),
        "state-shape-text": mutate(state_shape="abc"), "state-shape-empty": mutate(state_shape=[]),
        "state-shape-other": mutate(state_shape=[4]), "k-text": mutate(k="2"), "k-negative": mutate(k=-1),
        "k-huge": mutate(k=10 ** 6), "arch-none": mutate(arch=None), "arch-unknown": mutate(arch={"name": "gpt"}),
        "arch-bad-width": mutate(arch={"name": "resmlp", "width": -3, "depth": 1}),
        "weights-none": mutate(weights=None), "weights-empty": mutate(weights={}),
        "normalization-missing": mutate(normalization=None),
        "scale-zero": mutate(**{"normalization.scale": torch.zeros(3)}),
        "scale-nan": mutate(**{"normalization.scale": torch.full((3,), float("nan"))}),
        "mean-shape": mutate(**{"normalization.mean": torch.zeros(7)}),
        "training-list": mutate(training=[1, 2]), "format-other": mutate(format="other/9"),
        "not-a-dict": [1, 2, 3],
    }
    out = {}
    for name, p in variants.items():
        path = d / f"ckpt-{name}.pt"
        torch.save(p, path)
        out[name] = path
    for name, data in _truncations(good_model.read_bytes()).items():
        path = d / f"ckpt-cut-{name}.pt"
        path.write_bytes(data)
        out[f"cut-{name}"] = path
    return out


def _data_mutations(d: Path, good_h5: Path, good_npz: Path) -> dict:
    x = np.random.default_rng(0).normal(size=(3, 24, 3))
    variants = {
        "1d": np.zeros(5), "text": np.array([["a", "b"]] * 3), "nan": np.where(x > 1, np.nan, x),
        "empty": np.zeros((0, 24, 3)), "empty-states": np.zeros((3, 0, 3)), "huge": np.full((3, 24, 3), 1e300),
        "short": x[:, :2], "state-shape": np.zeros((3, 24, 5)), "complex": x + 1j, "bool": x > 0,
    }
    out = {}
    for name, arr in variants.items():
        path = d / f"data-{name}.npy"
        np.save(path, arr)
        out[name] = path
    for src in (good_h5, good_npz):
        for name, data in _truncations(src.read_bytes()).items():
            path = d / f"data-cut-{name}{src.suffix}"
            path.write_bytes(data)
            out[f"cut-{name}{src.suffix}"] = path
    return out


def _run_damaged(argv_for, paths, tmp_path, capfd, old_out):
    """Runs the CLI on each damaged file with an existing output; clean = exit 2 and one line, or a correct
    run (the damage left a valid file); lost = the existing output changed on a failed run."""
    verdicts = {}
    for name, path in paths.items():
        old_out.write_bytes(b"previous output\n")
        rc = main([str(a) for a in argv_for(path)])
        err = capfd.readouterr().err
        intact = old_out.exists() and old_out.read_bytes() == b"previous output\n"
        if rc == 2 and _one_line(err, "error: ") and intact:
            verdicts[name] = "clean"
        elif rc == 0 and "Traceback" not in err:
            verdicts[name] = "clean"                 # e.g. a flipped bit inside a number: still a valid file
        elif not intact:
            verdicts[name] = "lost"
        else:
            verdicts[name] = f"crashed (exit {rc}): {err[-300:]}"
    return verdicts


def test_damaged_observation_files(good, tmp_path, capfd):
    paths = _obs_mutations(tmp_path)
    for src in (good.obs, good.obs_h5):
        for name, data in _truncations(src.read_bytes()).items():
            path = tmp_path / f"obs-cut-{name}{src.suffix}"
            path.write_bytes(data)
            paths[f"cut-{name}{src.suffix}"] = path
    out = tmp_path / "post.npz"
    verdicts = _run_damaged(lambda p: ["assimilate", "--system", "lorenz63", "--observations", p, "--method", "bpf",
                                       "--samples", "2", "--particles", "16", "--device", "cpu", "--threads", "1",
                                       "-q", "--out", out], paths, tmp_path, capfd, out)
    _count("damaged observation files", verdicts)


def test_damaged_checkpoints(good, tmp_path, capfd):
    paths = _ckpt_mutations(tmp_path, good.model)
    out = tmp_path / "post.npz"
    verdicts = _run_damaged(lambda p: ["assimilate", "--system", "lorenz63", "--observations", good.obs, "--model", p,
                                       "--samples", "2", "--steps", "1", "--device", "cpu", "--threads", "1", "-q",
                                       "--out", out], paths, tmp_path, capfd, out)
    for name in ("scale-zero", "system-string", "schedule-none", "system-params-bogus", "cut-empty"):
        assert verdicts[name] == "clean"
        assert main(["assimilate", "--system", "lorenz63", "--observations", str(good.obs), "--model",
                     str(paths[name]), "--samples", "2", "--out", str(out)]) == 2, name
        assert _one_line(capfd.readouterr().err, "error: "), name
    _count("damaged checkpoints", verdicts)


def test_damaged_trajectory_files(good, tmp_path, capfd):
    paths = _data_mutations(tmp_path, good.data, good.data_npz)
    out = tmp_path / "m.pt"
    verdicts = _run_damaged(lambda p: ["train", "--data", p, "--system", "lorenz63", "--k", "1", "--steps", "1",
                                       "--width", "4", "--depth", "1", "--batch-size", "4", "--device", "cpu",
                                       "--threads", "1", "-q", "--out", out], paths, tmp_path, capfd, out)
    _count("damaged trajectory files", verdicts)


def test_core_loaders_raise_one_line_errors(good, tmp_path):
    """The same damaged files read by the core loaders the app uses: their own error type, one line."""
    from sda_gui.core.datasets import DatasetError, load_trajectories
    from sda_gui.core.diffusion.checkpoint import CheckpointError, load_checkpoint
    from sda_gui.core.observation import Observation, ObservationError

    groups = [(_ckpt_mutations(tmp_path, good.model), load_checkpoint, CheckpointError),
              (_data_mutations(tmp_path, good.data, good.data_npz), load_trajectories, DatasetError),
              (_obs_mutations(tmp_path), lambda p: Observation.load(p).validate((3,)), ObservationError)]
    verdicts = {}
    for paths, load, error in groups:
        for name, path in paths.items():
            try:
                load(path)
                verdicts[f"{error.__name__}:{name}"] = "clean"
            except error as exc:
                verdicts[f"{error.__name__}:{name}"] = "clean" if "\n" not in str(exc) and str(exc) else "crashed"
            except Exception as exc:  # noqa: BLE001 - anything else is a crash for the app
                verdicts[f"{error.__name__}:{name}"] = f"crashed: {type(exc).__name__}: {exc}"
    _count("core loaders on damaged files", verdicts)
