"""Every bad argument of every subcommand: exit 2, one ``error: …`` line, no traceback, no file written.

The CLI runs in-process (``sda_gui.cli.main``) with stderr captured: the same code
path as ``python -m sda_gui``, without paying for a torch import per case. Each
case writes (if it wrongly wrote anything) into a fresh folder, which must stay
empty. Also here: help texts and defaults, progress on stderr, threads and the
out-of-memory message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sda_gui.cli import build_parser, main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

L = 12


def one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.diffusion.checkpoint import save_checkpoint
    from sda_gui.core.diffusion.training import TrainConfig, train_model
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import make_system

    d = tmp_path_factory.mktemp("inputs")
    system = make_system("lorenz63", burn_in=16)
    data = system.simulate(3, 24, seed=0)
    save_trajectories(d / "data.h5", data, system, {"seed": 0})
    model, _ = train_model(system, data, TrainConfig(k=1, arch={"name": "resmlp", "width": 8, "depth": 1}, steps=3,
                                                     batch_size=16, val_every=3))
    save_checkpoint(model, d / "model.pt", model.training_info)
    payload = torch.load(d / "model.pt", weights_only=True)
    payload["normalization"]["scale"] = torch.zeros(3)
    torch.save(payload, d / "zero_scale.pt")
    mask = np.zeros((L, 3), dtype=bool)
    mask[::3, 0] = True
    Observation(mask, np.where(mask, 1.0, 0.0), 0.5).save(d / "obs.npz")
    np.save(d / "empty.npy", np.zeros((0, 24, 3), dtype=np.float32))
    np.save(d / "short.npy", np.zeros((2, 4, 3), dtype=np.float32))     # shorter than a k=2 window
    np.save(d / "huge.npy", np.full((2, 24, 3), 1e39))                  # beyond float32
    np.savez(d / "truth.npz", truth=data[0, :L].numpy())
    (d / "folder").mkdir()
    (d / "link.npz").symlink_to(d / "obs.npz")
    return SimpleNamespace(dir=d, model=d / "model.pt", obs=d / "obs.npz", data=d / "data.h5", truth=d / "truth.npz")


def _sim(f, *extra, out="o.h5"):
    return ["simulate", "--system", "lorenz63", "--trajectories", "2", "--length", "8", "--param", "burn_in=4",
            "--device", "cpu", *extra, "--out", out]


def _train(f, *extra, out="m.pt", data=True):
    src = ["--data", str(f.data)] if data else ["--system", "lorenz63", "--trajectories", "2", "--length", "16"]
    return ["train", *src, "--steps", "2", "--width", "8", "--depth", "1", "--batch-size", "8", "--device", "cpu",
            *extra, "--out", out]


def _assim(f, *extra, out="p.npz", model=True):
    return ["assimilate", "--system", "lorenz63", "--observations", str(f.obs), "--samples", "2",
            *(["--model", str(f.model)] if model else []), "--device", "cpu", *extra, "--out", out]


def _eval(f, *extra):
    return ["evaluate", "--models", str(f.model), "--cases", "1", "--samples", "2", "--particles", "16", "--steps",
            "1", "--device", "cpu", *extra, "--out-dir", "ev"]


def _cmp(f, *extra, methods="bpf,rpf", truth=None, out_dir="c"):
    return ["compare", "--system", "lorenz63", "--observations", str(f.obs), "--truth", str(truth or f.truth),
            "--methods", methods, "--samples", "2", "--particles", "16", "--device", "cpu", *extra,
            "--out-dir", str(out_dir)]


CASES = [
    # simulate
    ("sim-length-negative", lambda f: _sim(f, "--length", "-3"), "--length"),
    ("sim-length-zero", lambda f: _sim(f, "--length", "0"), "--length"),
    ("sim-trajectories-negative", lambda f: _sim(f, "--trajectories", "-1"), "--trajectories"),
    ("sim-resolution-zero", lambda f: ["simulate", "--system", "kolmogorov", "--param", "resolution=0",
                                       "--out", "k.h5"], "resolution"),
    ("sim-rho-nan", lambda f: _sim(f, "--param", "rho=NaN"), "rho"),
    ("sim-rho-nan-lower", lambda f: _sim(f, "--param", "rho=nan"), "rho"),
    ("sim-dt-negative", lambda f: _sim(f, "--param", "dt=-1"), "dt"),
    ("sim-dt-zero", lambda f: _sim(f, "--param", "dt=0"), "dt"),
    ("sim-burn-in-negative", lambda f: _sim(f, "--param", "burn_in=-5"), "burn_in"),
    ("sim-burn-in-fraction", lambda f: _sim(f, "--param", "burn_in=1.5"), "whole number"),
    ("sim-param-text", lambda f: _sim(f, "--param", "rho=abc"), "number"),
    ("sim-param-unknown", lambda f: _sim(f, "--param", "foo=1"), "no parameter 'foo'"),
    ("sim-param-no-equals", lambda f: _sim(f, "--param", "rho"), "key=value"),
    ("sim-l96-too-small", lambda f: ["simulate", "--system", "lorenz96", "--param", "n=2", "--out", "l.h5"], "n"),
    ("sim-unknown-system", lambda f: ["simulate", "--system", "lorenz84", "--out", "x.h5"], "unknown system"),
    ("sim-out-txt", lambda f: _sim(f, out="p.txt"), ".txt"),
    ("sim-out-npz", lambda f: _sim(f, out="p.npz"), ".h5"),
    ("sim-out-slash", lambda f: _sim(f, out="dir/"), "folder"),
    ("sim-out-folder", lambda f: _sim(f, out=str(f.dir / "folder")), "folder"),
    ("sim-out-under-a-file", lambda f: _sim(f, out=str(f.obs / "x.h5")), "not a folder"),
    ("sim-seed-negative", lambda f: _sim(f, "--seed", "-1"), "--seed"),
    ("sim-seed-huge", lambda f: _sim(f, "--seed", str(2 ** 64)), "--seed"),
    ("sim-threads-zero", lambda f: _sim(f, "--threads", "0"), "--threads"),
    ("sim-threads-text", lambda f: _sim(f, "--threads", "many"), "--threads"),
    ("sim-device", lambda f: _sim(f, "--device", "tpu"), "unknown device"),
    ("sim-int-text", lambda f: _sim(f, "--length", "ten"), "invalid int"),
    ("sim-missing-out", lambda f: ["simulate", "--system", "lorenz63"], "--out"),
    ("sim-quiet-and-verbose", lambda f: _sim(f, "-q", "-v"), "not allowed"),
    # train
    ("train-steps-zero", lambda f: _train(f, "--steps", "0"), "--steps"),
    ("train-steps-negative", lambda f: _train(f, "--steps", "-1"), "--steps"),
    ("train-val-every-zero", lambda f: _train(f, "--val-every", "0"), "--val-every"),
    ("train-batch-negative", lambda f: _train(f, "--batch-size", "-1"), "--batch-size"),
    ("train-k-negative", lambda f: _train(f, "--k", "-1"), "--k"),
    ("train-k-zero", lambda f: _train(f, "--k", "0"), "--k"),
    ("train-trajectories-zero", lambda f: _train(f, "--trajectories", "0", data=False), "--trajectories"),
    ("train-length-below-window", lambda f: _train(f, "--length", "3", data=False), "window"),
    ("train-val-fraction-one", lambda f: _train(f, "--val-fraction", "1"), "--val-fraction"),
    ("train-val-fraction-big", lambda f: _train(f, "--val-fraction", "1.5"), "--val-fraction"),
    ("train-val-fraction-zero", lambda f: _train(f, "--val-fraction", "0"), "--val-fraction"),
    ("train-val-fraction-all", lambda f: _train(f, "--val-fraction", "0.9"), "no trajectory"),
    ("train-kernel-zero", lambda f: _train(f, "--kernel", "0"), "--kernel"),
    ("train-kernel-even", lambda f: ["train", "--system", "lorenz96", "--param", "n=8", "--trajectories", "2",
                                     "--length", "16", "--kernel", "4", "--out", "m.pt"], "odd"),
    ("train-kernel-resmlp", lambda f: _train(f, "--kernel", "3"), "does not apply"),
    ("train-unet-lorenz63", lambda f: _train(f, "--arch", "unet"), "unet"),
    ("train-depth-zero", lambda f: _train(f, "--depth", "0"), "--depth"),
    ("train-width-zero", lambda f: _train(f, "--width", "0"), "--width"),
    ("train-emb-odd", lambda f: _train(f, "--emb", "5"), "--emb"),
    ("train-lr-zero", lambda f: _train(f, "--lr", "0"), "--lr"),
    ("train-weight-decay-negative", lambda f: _train(f, "--weight-decay", "-1"), "--weight-decay"),
    ("train-time-limit-nan", lambda f: _train(f, "--time-limit", "nan"), "--time-limit"),
    ("train-time-limit-zero", lambda f: _train(f, "--time-limit", "0"), "--time-limit"),
    ("train-time-limit-inf", lambda f: _train(f, "--time-limit", "inf"), "--time-limit"),
    ("train-save-every-negative", lambda f: _train(f, "--save-every", "-2"), "--save-every"),
    ("train-ema-one", lambda f: _train(f, "--ema", "1"), "--ema"),
    ("train-ema-negative", lambda f: _train(f, "--ema", "-0.5"), "--ema"),
    ("train-ema-nan", lambda f: _train(f, "--ema", "nan"), "--ema"),
    ("train-empty-data", lambda f: _train(f)[:1] + ["--data", str(f.dir / "empty.npy"), "--system", "lorenz63"]
     + _train(f)[3:], "no data"),
    ("train-short-data", lambda f: _train(f)[:1] + ["--data", str(f.dir / "short.npy"), "--system", "lorenz63"]
     + _train(f)[3:], "at least 5 states"),
    ("train-huge-data", lambda f: _train(f)[:1] + ["--data", str(f.dir / "huge.npy"), "--system", "lorenz63"]
     + _train(f)[3:], "float32"),
    ("train-data-missing", lambda f: ["train", "--data", str(f.dir / "absent.h5"), "--out", "m.pt"], "not found"),
    ("train-data-other-system", lambda f: _train(f, "--system", "lorenz96"), "differs"),
    ("train-data-and-param", lambda f: _train(f, "--param", "rho=20"), "--param"),
    ("train-no-system", lambda f: ["train", "--out", "m.pt"], "--system"),
    ("train-resume-and-init", lambda f: _train(f, "--resume", str(f.model), "--init", str(f.model)), "not both"),
    ("train-resume-not-resumable", lambda f: _train(f, "--resume", str(f.model)), "cannot resume"),
    ("train-init-with-network-options", lambda f: ["train", "--data", str(f.data), "--init", str(f.model),
                                                   "--width", "4", "--out", "m.pt"], "--init"),
    ("train-out-txt", lambda f: _train(f, out="m.txt"), ".txt"),
    ("train-out-is-init", lambda f: ["train", "--data", str(f.data), "--init", str(f.model), "--out",
                                     str(f.model)], "--init"),
    ("train-channels-text", lambda f: ["train", "--system", "kolmogorov", "--channels", "a,b", "--out", "m.pt"],
     "--channels"),
    # assimilate
    ("assim-samples-zero", lambda f: _assim(f)[:5] + ["--samples", "0"] + _assim(f)[7:], "--samples"),
    ("assim-samples-negative", lambda f: _assim(f)[:5] + ["--samples", "-4"] + _assim(f)[7:], "--samples"),
    ("assim-steps-zero", lambda f: _assim(f, "--steps", "0"), "--steps"),
    ("assim-corrections-negative", lambda f: _assim(f, "--corrections", "-1"), "--corrections"),
    ("assim-final-corrections-negative", lambda f: _assim(f, "--final-corrections", "-2"), "--final-corrections"),
    ("assim-gamma-negative", lambda f: _assim(f, "--gamma", "-1"), "--gamma"),
    ("assim-dynamics-std-negative", lambda f: _assim(f, "--dynamics-std", "-0.1"), "--dynamics-std"),
    ("assim-dynamics-gamma-negative", lambda f: _assim(f, "--dynamics-std", "0.1", "--dynamics-gamma", "-1"),
     "--dynamics-gamma"),
    ("assim-dynamics-with-mmps", lambda f: _assim(f, "--dynamics-std", "0.1", "--guidance", "mmps"),
     "SDA guidance only"),
    ("assim-refine-iterations-negative", lambda f: _assim(f, "--refine-iterations", "-1"), "--refine-iterations"),
    ("assim-refine-stages-zero", lambda f: _assim(f, "--refine-iterations", "5", "--refine-stages", "0"),
     "--refine-stages"),
    ("assim-gamma-nan", lambda f: _assim(f, "--gamma", "nan"), "--gamma"),
    ("assim-tau-zero", lambda f: _assim(f, "--tau", "0"), "--tau"),
    ("assim-guidance", lambda f: _assim(f, "--guidance", "foo"), "--guidance"),
    ("assim-fold", lambda f: _assim(f, "--fold", "sideways"), "--fold"),
    ("assim-method-unknown", lambda f: _assim(f, "--method", "kalman9"), "unknown method"),
    ("assim-zero-scale-model", lambda f: _assim(f, model=False) + ["--model", str(f.dir / "zero_scale.pt")],
     "scale"),
    ("assim-model-missing", lambda f: _assim(f, model=False) + ["--model", str(f.dir / "absent.pt")], "not found"),
    ("assim-obs-missing", lambda f: ["assimilate", "--system", "lorenz63", "--observations", str(f.dir / "no.npz"),
                                     "--samples", "2", "--out", "p.npz"], "not found"),
    ("assim-out-is-obs", lambda f: _assim(f, out=str(f.obs)), "--observations"),
    ("assim-out-is-obs-by-link", lambda f: _assim(f, out=str(f.dir / "link.npz")), "--observations"),
    ("assim-out-txt", lambda f: _assim(f, out="p.txt"), ".txt"),
    ("assim-out-folder", lambda f: _assim(f, out=str(f.dir / "folder")), "folder"),
    ("assim-steps-for-bpf", lambda f: _assim(f, "--method", "bpf", "--steps", "4", model=False), "--steps"),
    ("assim-model-for-bpf", lambda f: _assim(f, "--method", "bpf"), "sda only"),
    ("assim-particles-zero", lambda f: _assim(f, "--method", "bpf", "--particles", "0", model=False), "--particles"),
    ("assim-iterations-zero", lambda f: _assim(f, "--method", "bpf", "--iterations", "0", model=False),
     "--iterations"),
    ("assim-inflation-for-sda", lambda f: _assim(f, "--inflation", "1.1"), "--inflation"),
    ("assim-other-system", lambda f: _assim(f)[:2] + ["lorenz96"] + _assim(f)[3:], "lorenz96"),
    ("assim-too-much-memory", lambda f: _assim(f)[:5] + ["--samples", str(10 ** 10)] + _assim(f)[7:], "memory"),
    # evaluate
    ("eval-protocol", lambda f: _eval(f, "--protocols", "foo"), "--protocols"),
    ("eval-protocol-empty", lambda f: _eval(f, "--protocols", ""), "--protocols"),
    ("eval-particles-zero", lambda f: _eval(f, "--particles", "0"), "--particles"),
    ("eval-samples-zero", lambda f: _eval(f, "--samples", "0"), "--samples"),
    ("eval-cases-negative", lambda f: _eval(f, "--cases", "-1"), "--cases"),
    ("eval-steps-zero", lambda f: _eval(f, "--steps", "0"), "--steps"),
    ("eval-corrections-text", lambda f: _eval(f, "--corrections", "a"), "--corrections"),
    ("eval-corrections-negative", lambda f: _eval(f, "--corrections", "0,-1"), "--corrections"),
    ("eval-system", lambda f: _eval(f, "--system", "lorenz96"), "lorenz63"),
    ("eval-model-missing", lambda f: ["evaluate", "--models", str(f.dir / "absent.pt"), "--out-dir", "ev"],
     "not found"),
    ("eval-out-dir-is-file", lambda f: _eval(f)[:-2] + ["--out-dir", str(f.obs)], "not a folder"),
    # bench
    ("bench-train-steps-zero", lambda f: ["bench", "train", "--steps", "0"], "--steps"),
    ("bench-solver-resolution-zero", lambda f: ["bench", "solver", "--resolution", "0"], "--resolution"),
    ("bench-solver-resolution-odd", lambda f: ["bench", "solver", "--resolution", "100"], "resolution"),
    ("bench-case-corrections-text", lambda f: ["bench", "case", "--corrections", "a"], "--corrections"),
    ("bench-case-two-corrections", lambda f: ["bench", "case", "--corrections", "1,2"], "one value"),
    ("bench-samples-zero", lambda f: ["bench", "assimilate", "--samples", "0"], "--samples"),
    ("bench-repeats-zero", lambda f: ["bench", "assimilate", "--repeats", "0"], "--repeats"),
    ("bench-length-zero", lambda f: ["bench", "assimilate", "--length", "0"], "--length"),
    ("bench-unknown", lambda f: ["bench", "everything"], "invalid choice"),
    ("bench-system", lambda f: ["bench", "assimilate", "--system", "lorenz84"], "unknown system"),
    ("bench-threads-max-zero", lambda f: ["bench", "threads", "--max-threads", "0"], "--max-threads"),
    # compare
    ("compare-samples-zero", lambda f: _cmp(f, "--samples", "0"), "--samples"),
    ("compare-gamma-negative", lambda f: _cmp(f, "--gamma", "-1"), "--gamma"),
    ("compare-fold", lambda f: _cmp(f, "--fold", "edge"), "--fold"),
    ("compare-method-unknown", lambda f: _cmp(f, methods="bpf,kalman9"), "kalman9"),
    ("compare-method-twice", lambda f: _cmp(f, methods="bpf,bpf"), "twice"),
    ("compare-methods-empty", lambda f: _cmp(f, methods=""), "--methods"),
    ("compare-option-of-none", lambda f: _cmp(f, "--inflation", "1.1"), "--inflation"),
    ("compare-truth-length", lambda f: _cmp(f, truth=f.data), "one of 12 states"),
    ("compare-truth-missing", lambda f: _cmp(f, truth=f.dir / "absent.h5"), "not found"),
    ("compare-truth-shape", lambda f: _cmp(f, truth=f.dir / "short.npy"), "--truth"),
    ("compare-out-dir-file", lambda f: _cmp(f, out_dir=f.obs), "not a folder"),
    # no subcommand, unknown option
    ("no-command", lambda f: [], "required"),
    ("unknown-option", lambda f: _sim(f, "--frobnicate"), "unrecognized"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_argument(case, files, tmp_path, monkeypatch, capfd):
    _, argv, fragment = case
    monkeypatch.chdir(tmp_path)
    before = {p.name: p.stat().st_mtime_ns for p in files.dir.iterdir()}
    rc = main([str(a) for a in argv(files)])
    captured = capfd.readouterr()
    line = one_error_line(captured.err)
    assert rc == 2, line
    assert fragment in line, line
    assert captured.out == ""
    assert list(tmp_path.iterdir()) == []                                 # nothing written
    assert {p.name: p.stat().st_mtime_ns for p in files.dir.iterdir()} == before


def test_every_option_has_help_and_system_lists_its_choices():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {"simulate", "observe", "train", "assimilate", "compare", "evaluate", "bench", "lessons"}
    for name, sub in commands.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
        options = {o for a in sub._actions for o in a.option_strings}
        # listing lessons computes nothing: no device or threads to choose
        assert ({"-v", "-q"} if name == "lessons" else {"--threads", "-v", "-q", "--device"}) <= options, name
        text = sub.format_help()
        assert "default:" in text
        if "--system" in options and name != "evaluate":           # evaluate's protocol is Lorenz-63's
            assert "lorenz63" in text and "lorenz96" in text and "kolmogorov" in text
    assert "sda, enkf, letkf, enks, ienks, 4dvar, wc4dvar, bpf, rpf" in " ".join(commands["assimilate"].format_help().split())


def test_help_imports_no_torch():
    code = ("import sys\nfrom sda_gui.cli import main\nrc = main(['assimilate', '--help'])\n"
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout
    assert out.strip().splitlines()[-1] == "0 False"


def test_progress_on_stderr_result_on_stdout(tmp_path, capfd):
    base = ["simulate", "--system", "lorenz63", "--trajectories", "2", "--length", "8", "--param", "burn_in=4",
            "--device", "cpu", "--threads", "1"]
    assert main(base + ["--out", str(tmp_path / "a.h5")]) == 0
    captured = capfd.readouterr()
    lines = captured.err.splitlines()
    assert lines and all(line.startswith("simulate: ") for line in lines)
    assert "12/12 states" in lines[-1] and "(100%)" in lines[-1]
    assert captured.out.splitlines() == [captured.out.strip()] and str(tmp_path / "a.h5") in captured.out
    assert main(base + ["-q", "--out", str(tmp_path / "b.h5")]) == 0
    captured = capfd.readouterr()
    assert captured.err == "" and "b.h5" in captured.out
    assert main(base + ["-v", "--out", str(tmp_path / "c.h5")]) == 0
    err = capfd.readouterr().err
    assert "1 thread(s)" in err and "Lorenz63(" in err


def test_threads_auto_leaves_busy_cores_alone(monkeypatch):
    from sda_gui.cli import resources
    from sda_gui.core import threads

    monkeypatch.setattr(threads, "usable_cores", lambda: 4)
    for busy, expected in ((0.0, 4), (0.3, 4), (1.2, 3), (1.6, 2), (3.5, 1), (9.0, 1)):
        monkeypatch.setattr(threads, "busy_cores", lambda busy=busy: busy)
        assert resources.parse_threads("auto") == expected
    assert resources.parse_threads("3") == 3


def test_busy_cores_are_read_from_the_cpu_counters(monkeypatch):
    from sda_gui.core import threads

    # two CPUs; between the readings 150 of 200 jiffies were busy: 1.5 cores
    before = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\ncpu1 50 0 50 350 50 0 0 0 0 0\nintr 1\n"
    after = "cpu  200 0 150 740 110 0 0 0 0 0\ncpu0 1\ncpu1 1\n"
    readings = iter([before, after])
    monkeypatch.setattr(threads, "_read_stat", lambda: next(readings))
    assert threads.busy_cores(sample_s=0) == pytest.approx(1.5)
    # unreadable counters: the load average
    monkeypatch.setattr(threads, "_read_stat", lambda: (_ for _ in ()).throw(OSError("no /proc")))
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.7, 0.0, 0.0))
    assert threads.busy_cores(sample_s=0) == 0.7


def test_threads_are_applied_and_restored(tmp_path, capfd, monkeypatch):
    seen = []
    from sda_gui.core.systems.base import DynamicalSystem

    real = DynamicalSystem.simulate
    monkeypatch.setattr(DynamicalSystem, "simulate",
                        lambda self, *a, **k: (seen.append(torch.get_num_threads()), real(self, *a, **k))[1])
    before = torch.get_num_threads()
    assert main(["simulate", "--system", "lorenz63", "--trajectories", "1", "--length", "4", "--param", "burn_in=2",
                 "--threads", "2", "-q", "--out", str(tmp_path / "t.h5")]) == 0
    assert seen == [2] and torch.get_num_threads() == before
    capfd.readouterr()


@pytest.mark.parametrize("error", [MemoryError("Unable to allocate 9.3 TiB for an array"),
                                   RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                                                "allocate memory: you tried to allocate 9999999999 bytes")])
def test_out_of_memory_is_one_line(error, tmp_path, monkeypatch, capfd):
    from sda_gui.core.systems.base import DynamicalSystem

    def boom(self, *args, **kwargs):
        raise error

    monkeypatch.setattr(DynamicalSystem, "simulate", boom)
    rc = main(["simulate", "--system", "lorenz63", "--out", str(tmp_path / "x.h5")])
    line = one_error_line(capfd.readouterr().err)
    assert rc == 2 and "out of memory" in line and "--trajectories" in line
    assert not (tmp_path / "x.h5").exists()


def test_an_unexpected_error_is_one_line_and_its_traceback_shows_under_verbose(tmp_path, monkeypatch, capfd):
    from sda_gui.core.systems.base import DynamicalSystem

    def bug(self, *args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(DynamicalSystem, "simulate", bug)
    args = ["simulate", "--system", "lorenz63", "--out", str(tmp_path / "x.h5")]
    assert main(args) == 1
    assert "KeyError" in one_error_line(capfd.readouterr().err)
    assert main(args + ["-v"]) == 1
    assert "Traceback" in capfd.readouterr().err


@pytest.mark.parametrize("argv", [
    ["-m", "sda_gui.app.bench", "--bogus"],                      # takes no options: refused before any benchmark
    ["-m", "sda_gui.app.run_memory", "not-a-spec"],
    ["-m", "sda_gui.app.run_memory", "missing.pt:8:64"],
    ["-m", "sda_gui.app.run_memory", "sda_gui/resources/models/lorenz63.pt:0:64"],
])
def test_developer_modules_refuse_bad_arguments_without_a_traceback(argv):
    root = Path(__file__).resolve().parent.parent
    env = {"QT_QPA_PLATFORM": "offscreen", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, *argv], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip().startswith("usage:"), done.stderr
