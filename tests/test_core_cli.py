"""The command line end to end, with a tiny model trained once.

Each ``python -m sda_gui`` process pays for importing torch (seconds on a busy CPU),
so real processes check ``train``, ``assimilate`` (.npz and .h5, the tiny and the
shipped model), ``--help`` and one bad input; the other bad inputs, ``simulate`` and
MMPS run ``sda_gui.cli.main`` in-process with the file descriptors captured: the
same code path, the same exit status and stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sda_gui.cli import main
from sda_gui.core.datasets import write_arrays


pytestmark = pytest.mark.usefixtures("one_torch_thread")


ROOT = Path(__file__).resolve().parents[1]
L = 12


def run_cli(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")             # as fast, and kinder to a shared CPU
    return subprocess.run([sys.executable, "-m", "sda_gui", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def assert_one_line_error(returncode, stderr, match=None):
    assert returncode != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    if match is not None:
        assert match in lines[0], lines[0]


def write_obs(path, length=L, state=3, **change):
    mask = np.zeros((length, state), dtype=bool)
    mask[::3, 0] = True
    values = np.where(mask, 1.5, np.nan)
    data = {"mask": mask, "values": values, "std": np.float64(0.5)}
    data.update(change)
    # written raw (not through Observation.save), so the file may be as malformed as a test needs
    write_arrays(Path(path), {k: v for k, v in data.items() if not isinstance(v, str)},
                 {k: v for k, v in data.items() if isinstance(v, str)})
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def tiny_model(workdir):
    out = workdir / "m.pt"
    proc = run_cli("train", "--system", "lorenz63", "--param", "burn_in=128", "--trajectories", 8, "--length", 64,
                   "--steps", 20,
                   "--width", 32, "--depth", 1, "--batch-size", 64, "--val-every", 10, "--device", "cpu",
                   "--out", out)
    assert proc.returncode == 0, proc.stderr
    return out, proc


@pytest.fixture(scope="module")
def obs_npz(workdir):
    return write_obs(workdir / "obs.npz")


def test_train_writes_a_checkpoint(tiny_model):
    from sda_gui.core.diffusion.checkpoint import load_checkpoint

    out, proc = tiny_model
    assert "Traceback" not in proc.stderr
    assert "trained" in proc.stdout and "train: 20/20 steps" in proc.stderr    # progress on stderr
    model = load_checkpoint(out)
    assert model.system["name"] == "lorenz63" and model.k == 2
    assert model.arch == {"name": "resmlp", "width": 32, "depth": 1}
    info = model.training_info
    assert info["steps"] == 20 and info["trajectories"] == [8, 64, 3] and info["data_seed"] == 0


def test_assimilate_npz(tiny_model, obs_npz, workdir):
    out = workdir / "post.npz"
    proc = run_cli("assimilate", "--system", "lorenz63", "--observations", obs_npz, "--samples", 4, "--steps", 4,
                   "--corrections", 1, "--model", tiny_model[0], "--device", "cpu", "--seed", 3, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with np.load(out) as f:
        samples = f["samples"]
        settings = json.loads(str(f["settings"]))
    assert samples.dtype == np.float32 and samples.shape == (4, L, 3)
    assert np.isfinite(samples).all()
    assert settings["samples"] == 4 and settings["steps"] == 4 and settings["corrections"] == 1
    assert settings["guidance"] == "sda" and settings["seed"] == 3 and settings["k"] == 2
    assert settings["system"] == "lorenz63" and settings["device"] == "cpu"


def test_assimilate_mmps_and_seed(tiny_model, obs_npz, workdir, capfd):
    outs = []
    for i, seed in enumerate((1, 1, 2)):
        out = workdir / f"mmps{i}.npz"
        rc = main(["assimilate", "--system", "lorenz63", "--observations", str(obs_npz), "--samples", "3",
                   "--steps", "3", "--corrections", "1", "--guidance", "mmps", "--model", str(tiny_model[0]),
                   "--device", "cpu", "--seed", str(seed), "--quiet", "--out", str(out)])
        assert rc == 0
        with np.load(out) as f:
            outs.append(f["samples"])
            assert json.loads(str(f["settings"]))["guidance"] == "mmps"
    assert outs[0].shape == (3, L, 3) and np.isfinite(outs[0]).all()
    np.testing.assert_array_equal(outs[0], outs[1])         # same seed, same samples
    assert not np.array_equal(outs[0], outs[2])
    assert "Traceback" not in capfd.readouterr().err


def test_assimilate_h5_in_and_out_with_the_shipped_model_and_dps(workdir):
    import h5py

    from sda_gui.core.diffusion.checkpoint import default_model_path

    assert default_model_path("lorenz63").exists()
    n = 32                                  # the shipped model's window is 27 states
    obs = write_obs(workdir / "obs.h5", length=n)
    out = workdir / "post.h5"
    proc = run_cli("assimilate", "--system", "lorenz63", "--observations", obs, "--samples", 2, "--steps", 2,
                   "--corrections", 0, "--guidance", "dps", "--device", "cpu", "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""                        # --quiet: no progress lines
    with h5py.File(out, "r") as f:
        samples = f["samples"][()]
        settings = json.loads(f.attrs["settings"])
    assert samples.dtype == np.float32 and samples.shape == (2, n, 3) and np.isfinite(samples).all()
    assert settings["guidance"] == "dps" and settings["model"] == "default" and settings["corrections"] == 0


@pytest.mark.parametrize("extra, expected", [((), 0.05), (("--guidance", "dps"), 0.0),
                                             (("--dynamics-std", "0"), 0.0)])
def test_lorenz96_dynamics_default_gives_way(workdir, capfd, extra, expected):
    """Lorenz-96 runs with the dynamics term by default; another guidance turns the default off
    (no refusal), and --dynamics-std 0 turns it off by hand."""
    obs = write_obs(workdir / "obs96.npz", length=16, state=40)
    out = workdir / "post96.npz"
    rc = main(["assimilate", "--system", "lorenz96", "--observations", str(obs), "--samples", "2", "--steps", "2",
               "--corrections", "0", "--device", "cpu", "--quiet", *extra, "--out", str(out)])
    assert rc == 0, capfd.readouterr().err
    with np.load(out) as f:
        assert json.loads(str(f["settings"]))["dynamics_std"] == expected


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_assimilate_any_method_writes_the_same_file(tiny_model, obs_npz, workdir, capfd, suffix):
    """--method picks any registered method; the file is the same: samples and a settings record."""
    import h5py

    records = {}
    for method, extra in (("bpf", ["--particles", "64"]), ("sda", ["--steps", "2", "--model", str(tiny_model[0])])):
        out = workdir / f"any-{method}{suffix}"
        out.write_bytes(b"an older result")                  # replaced whole, atomically
        rc = main(["assimilate", "--system", "lorenz63", "--observations", str(obs_npz), "--method", method,
                   "--samples", "3", *extra, "--device", "cpu", "--seed", "5", "-q", "--out", str(out)])
        captured = capfd.readouterr()
        assert rc == 0, captured.err
        assert captured.err == "" and captured.out.strip().endswith(f"-> {out}")
        if suffix == ".npz":
            with np.load(out) as f:
                samples, record = f["samples"], json.loads(str(f["settings"]))
        else:
            with h5py.File(out, "r") as f:
                samples, record = f["samples"][()], json.loads(f.attrs["settings"])
        assert samples.shape == (3, L, 3) and samples.dtype == np.float32 and np.isfinite(samples).all()
        records[method] = record
    bpf, sda = records["bpf"], records["sda"]
    assert bpf["method"] == "bpf" and bpf["method_settings"]["particles"] == 64 and bpf["model"] is None
    assert bpf["diagnostics"]["particles"] == 64 and "min_ess" in bpf["diagnostics"]
    assert sda["method"] == "sda" and sda["steps"] == 2 and sda["method_settings"]["corrections"] == 1
    assert sda["k"] == 2 and sda["diagnostics"]["network_calls_per_step"] == 2
    for record in records.values():
        assert record["samples"] == 3 and record["seed"] == 5 and record["system"] == "lorenz63"
        assert record["device"] == "cpu" and record["seconds"] > 0


def test_compare_writes_a_report_for_each_truth_format(workdir, capfd):
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.observation import every_nth_state_mask, synthesize
    from sda_gui.core.systems import make_system

    system = make_system("lorenz63")
    truth = system.simulate(1, L, seed=2)
    save_trajectories(workdir / "truth.h5", truth, system)                 # (1, L, 3), as simulate writes
    np.savez(workdir / "truth.npz", truth=truth[0].numpy())                # (L, 3) under 'truth'
    synthesize(truth[0].numpy(), every_nth_state_mask(L, (3,), 2), 0.5, seed=3).save(workdir / "cmp-obs.npz")
    for source in ("truth.h5", "truth.npz"):
        out = workdir / f"cmp-{source}"
        rc = main(["compare", "--system", "lorenz63", "--observations", str(workdir / "cmp-obs.npz"), "--truth",
                   str(workdir / source), "--methods", "bpf,rpf", "--samples", "8", "--particles", "256",
                   "--device", "cpu", "--out-dir", str(out)])
        captured = capfd.readouterr()
        assert rc == 0, captured.err
        assert sorted(p.name for p in out.iterdir()) == ["compare.csv", "compare.md", "compare.png", "provenance.json"]
        record = json.loads((out / "provenance.json").read_text())
        assert record["truth"]["path"] == str((workdir / source).resolve()) and record["seeds"] == {"seed": 0}
        table = (out / "compare.md").read_text()
        assert "Particle filter" in table and "Regularised PF" in table
        assert "compare: bpf: RMSE" in captured.err and str(out / "compare.md") in captured.out


def test_simulate_writes_a_dataset(workdir, capfd):
    from sda_gui.core.datasets import load_trajectories

    out = workdir / "sim.h5"
    rc = main(["simulate", "--system", "lorenz96", "--param", "n=8", "--param", "burn_in=16", "--trajectories", "3",
               "--length", "10", "--seed", "4", "--device", "cpu", "--out", str(out)])
    assert rc == 0 and "Traceback" not in capfd.readouterr().err
    arr, meta = load_trajectories(out, state_shape=(8,))
    assert arr.shape == (3, 10, 8) and np.isfinite(arr).all()
    assert meta["system"] == "lorenz96" and meta["params"]["n"] == 8 and meta["seed"] == 4


@pytest.mark.parametrize("command", [None, "simulate", "train", "assimilate", "compare", "evaluate", "bench"])
def test_help(command):
    proc = run_cli(*([command] if command else []), "--help", timeout=60)
    assert proc.returncode == 0 and "usage:" in proc.stdout and proc.stderr == ""


def test_assimilate_help_lists_the_contract():
    proc = run_cli("assimilate", "--help", timeout=60)
    for option in ("--system", "--observations", "--samples", "--steps", "--corrections", "--guidance",
                   "--tau", "--gamma", "--model", "--device", "--seed", "--out"):
        assert option in proc.stdout


# ------------------------------------------------------------------------------------------
# bad input: a non-zero exit and one "error: ..." line, no traceback
# ------------------------------------------------------------------------------------------


def _bad_case(case, workdir, model):
    """(arguments, expected fragment of the error line) for one bad input."""
    obs = workdir / f"bad-{case}.npz"
    system = "lorenz63"
    if case == "mask-shape":
        write_obs(obs, state=2)
        match = "mask shape"
    elif case == "nan-observed":
        values = np.where(np.eye(L, 3, dtype=bool), np.nan, 1.0)
        write_obs(obs, mask=np.eye(L, 3, dtype=bool), values=values)
        match = "NaN"
    elif case == "std-zero":
        write_obs(obs, std=np.float64(0.0))
        match = "std"
    elif case == "std-negative":
        write_obs(obs, std=np.full((L, 3), -1.0))
        match = "std"
    elif case == "too-short":
        write_obs(obs, length=3)                       # a k=2 model needs L ≥ 5
        match = "2k+1"
    elif case == "other-system":
        write_obs(obs)
        system = "lorenz96"
        match = "lorenz96"
    elif case == "missing-obs":
        obs = workdir / "absent.npz"
        match = "not found"
    elif case == "missing-model":
        write_obs(obs)
        model = workdir / "absent.pt"
        match = "not found"
    elif case == "corrupt-model":
        write_obs(obs)
        model = workdir / "corrupt.pt"
        model.write_bytes(b"this is not a checkpoint" * 20)
        match = "corrupt.pt"
    elif case == "corrupt-obs":
        obs.write_bytes(b"PK\x03\x04 broken")
        match = "cannot read"
    elif case == "empty-mask":
        write_obs(obs, mask=np.zeros((L, 3), dtype=bool))
        match = "empty"
    elif case == "unknown-operator":
        write_obs(obs, operator="blur:2")
        match = "unknown observation operator"
    elif case == "missing-key":
        np.savez(obs, mask=np.ones((L, 3), dtype=bool), std=0.5)
        match = "lacks values"
    else:
        raise AssertionError(case)
    args = ["assimilate", "--system", system, "--observations", str(obs), "--samples", "2", "--steps", "2",
            "--corrections", "0", "--model", str(model), "--device", "cpu", "--out", str(workdir / "never.npz")]
    return args, match


BAD_CASES = ["mask-shape", "nan-observed", "std-zero", "std-negative", "too-short", "other-system", "missing-obs",
             "missing-model", "corrupt-model", "corrupt-obs", "empty-mask", "unknown-operator", "missing-key"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_in_process(case, tiny_model, workdir, capfd):
    args, match = _bad_case(case, workdir, tiny_model[0])
    rc = main(args)
    captured = capfd.readouterr()
    assert_one_line_error(rc, captured.err, match)
    assert not (workdir / "never.npz").exists()


def test_bad_input_process(tiny_model, workdir):
    args, match = _bad_case("nan-observed", workdir, tiny_model[0])
    proc = run_cli(*args)
    assert_one_line_error(proc.returncode, proc.stderr, match)


def test_bad_arguments_in_process(tiny_model, obs_npz, workdir, capfd):
    base = ["assimilate", "--system", "lorenz63", "--observations", str(obs_npz), "--model", str(tiny_model[0]),
            "--corrections", "0", "--out", str(workdir / "never.npz")]
    for extra, match in [(["--samples", "0", "--steps", "2", "--device", "cpu"], "samples"),
                         (["--samples", "2", "--steps", "0", "--device", "cpu"], "steps"),
                         (["--samples", "2", "--steps", "2", "--device", "tpu"], "unknown device")]:
        rc = main(base + extra)
        assert_one_line_error(rc, capfd.readouterr().err, match)
    rc = main(["simulate", "--system", "lorenz84", "--out", str(workdir / "never.h5")])
    assert_one_line_error(rc, capfd.readouterr().err, "unknown system")
    rc = main(["train", "--data", str(workdir / "absent.h5"), "--out", str(workdir / "never.pt")])
    assert_one_line_error(rc, capfd.readouterr().err, "not found")


def test_a_stopped_half_run_stays_resumable(workdir):
    from sda_gui.core.diffusion.checkpoint import read_checkpoint

    out = workdir / "stopped.pt"
    common = ["train", "--system", "lorenz63", "--param", "burn_in=16", "--trajectories", "4", "--length", "32",
              "--width", "16", "--depth", "1", "--batch-size", "32", "--val-every", "10", "--device", "cpu",
              "--half", "--out", str(out)]
    assert main([*common, "--steps", "40", "--time-limit", "1e-9"]) == 0
    assert "train_state" in read_checkpoint(out)                      # resumable, fp32
    half = read_checkpoint(workdir / "stopped-half.pt")
    assert "train_state" not in half
    assert all(v.dtype == torch.float16 for v in half["weights"].values() if v.is_floating_point())
    assert main([*common, "--steps", "40", "--resume", str(out)]) == 0  # finishes: --out is the fp16 file now
    final = read_checkpoint(out)
    assert "train_state" not in final and final["training"]["steps_done"] == 40
