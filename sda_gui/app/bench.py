"""GUI benchmarks: animation frame rate and event-loop responsiveness during a run.

``python -m sda_gui bench gui`` calls these. Both run offscreen when no display is set.

- ``bench_animation``: frames per second of the results viewer stepping through time,
  each frame really painted (``repaint``), for the Lorenz-96 view (curves + four
  Hovmöller panels) or a 64×64 field with four image panels.
- ``bench_timer_playback``: frames per second the playback timer really delivers when
  asked for a rate (the tests only check that it plays, loops and stops).
- ``bench_event_loop_gap``: the worst gap between ticks of a 5 ms UI timer while an
  assimilation runs on the worker thread with live previews (target: under 50 ms), and
  how many previews were shown during the run.
- ``bench_startup``: seconds from launching ``python main.py`` to the window painted,
  the default scenario painted and the shipped model loaded (target: scenario ≤ 3 s).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["bench_animation", "bench_animation_detailed", "bench_timer_playback", "bench_event_loop_gap",
           "bench_event_loop_gap_detailed", "bench_startup", "startup_once", "run_gui_benchmarks"]


def _app():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from .plotting import configure_pyqtgraph

    configure_pyqtgraph()
    return QApplication.instance() or QApplication([])


class _FieldSystem:
    """Stands in for a 2-D field system (no solver needed to time the display)."""

    name = "field"
    title = "64×64 field"
    state_shape = (2, 64, 64)
    variable_names = ["u", "v"]
    dt = 0.2


def _synthetic_results(kind: str, n_samples: int, length: int, seed: int = 0):
    from sda_gui.core.observation import Observation
    from sda_gui.core.systems import make_system

    from .state import Results

    rng = np.random.default_rng(seed)
    if kind == "lorenz96":
        system = make_system("lorenz96")
        truth = system.simulate(1, length, seed=seed)[0].numpy()
    elif kind == "lorenz63":
        system = make_system("lorenz63")
        truth = system.simulate(1, length, seed=seed)[0].numpy()
    elif kind == "field":
        system = _FieldSystem()
        y, x = np.meshgrid(np.linspace(0, 2 * np.pi, 64), np.linspace(0, 2 * np.pi, 64), indexing="ij")
        t = np.arange(length)[:, None, None] * 0.1
        truth = np.stack([np.sin(4 * y + t), np.cos(3 * x - t)], axis=1).astype(np.float32)
    else:
        raise ValueError(f"unknown benchmark view '{kind}' (lorenz96, lorenz63, field)")
    samples = (truth[None] + 0.5 * rng.standard_normal((n_samples, *truth.shape))).astype(np.float32)
    mask = rng.random(truth.shape) < 0.2
    obs = Observation(mask=mask, values=np.where(mask, truth, 0.0), std=0.5)
    return system, Results(samples=samples, observation=obs, truth=truth, settings={})


def make_results_view(kind: str = "lorenz96", n_samples: int = 16, length: int = 64, size=(960, 640)):
    """A shown ``ResultsView`` holding synthetic results (used by the benchmark and the soak test)."""
    _app()
    from .results_view import ResultsView
    from .state import AppState

    system, results = _synthetic_results(kind, n_samples, length)
    state = AppState()
    state.system = system
    view = ResultsView(state)
    view.resize(*size)
    view.show()
    state.set_results(results)
    return view


def bench_animation(frames: int = 600, kind: str = "lorenz96", n_samples: int = 16, length: int = 64,
                    warmup: int = 20) -> float:
    """Frames per second of the results animation (wall clock), each frame painted."""
    return bench_animation_detailed(frames, kind, n_samples, length, warmup)["fps"]


def bench_animation_detailed(frames: int = 600, kind: str = "lorenz96", n_samples: int = 16, length: int = 64,
                             warmup: int = 20) -> dict:
    """``fps`` (wall clock) and ``fps_cpu`` (frames per second of this process's CPU time).

    On a shared machine the wall-clock rate drops with other load; the CPU-time rate
    is what the same code reaches with a core to itself.
    """
    app = _app()
    view = make_results_view(kind, n_samples, length)
    widget = view.plot_widget()
    try:
        for _ in range(warmup):
            view.controller.advance()
            widget.repaint()
        app.processEvents()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(frames):
            view.controller.advance()
            widget.repaint()
            app.processEvents()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return {"fps": frames / wall, "fps_cpu": frames / max(cpu, 1e-9), "frames": frames, "view": kind}
    finally:
        view.close()
        view.deleteLater()
        app.processEvents()


def bench_timer_playback(fps: float = 240.0, frames: int = 240, kind: str = "lorenz63",
                         timeout_s: float = 120.0) -> dict:
    """Frames per second the playback timer delivers (wall clock) when asked for ``fps``.

    The view plays in a loop until ``frames`` frames were shown (or ``timeout_s``
    passed); ``fps`` is what a user sees, at most the requested rate.
    """
    app = _app()
    from PySide6.QtCore import QEventLoop, QTimer

    view = make_results_view(kind, n_samples=4, length=32, size=(800, 500))
    controller = view.controller
    loop = QEventLoop()
    try:
        view.set_speed(fps)
        view.set_loop(True)
        app.processEvents()
        start = controller.frames_shown

        def check(_frame):
            if controller.frames_shown - start >= frames:
                loop.quit()

        controller.frameChanged.connect(check)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        t0 = time.perf_counter()
        view.play()
        loop.exec()
        wall = time.perf_counter() - t0
        view.pause()
        shown = controller.frames_shown - start
        return {"requested_fps": float(fps), "fps": shown / max(wall, 1e-9), "frames": shown, "view": kind}
    finally:
        view.close()
        view.deleteLater()
        app.processEvents()


def bench_event_loop_gap(n_samples: int = 8, steps: int = 32, corrections: int = 1, model_path: Optional[str] = None,
                         interval_ms: int = 5, timeout_s: float = 600.0) -> float:
    """Worst gap (ms) between ticks of a ``interval_ms`` UI timer while an assimilation runs.

    Runs the default scenario in a full main window with live previews on. Uses the
    shipped Lorenz-96 model when there is one (or ``model_path``), else an untrained
    network of the default architecture: the timing does not depend on the weights.
    """
    return bench_event_loop_gap_detailed(n_samples, steps, corrections, model_path, interval_ms, timeout_s)["worst_gap_ms"]


def bench_event_loop_gap_detailed(n_samples: int = 8, steps: int = 32, corrections: int = 1,
                                  model_path: Optional[str] = None, interval_ms: int = 5,
                                  timeout_s: float = 600.0) -> dict:
    app = _app()
    from PySide6.QtCore import QTimer

    from sda_gui.core.diffusion.checkpoint import build_model, default_model_path, save_checkpoint
    from sda_gui.core.diffusion.training import default_arch

    from .main_window import MainWindow

    tmp = tempfile.mkdtemp(prefix="sda-bench-")
    window = MainWindow(settings_path=os.path.join(tmp, "settings.ini"))
    window.show()
    try:
        path = model_path
        if path is None:
            shipped = default_model_path("lorenz96")
            if shipped.exists():
                path = str(shipped)
            else:
                system = window.state.system
                path = os.path.join(tmp, "untrained.pt")
                save_checkpoint(build_model(system, 2, default_arch(system)), path)
        if not window.assimilation_panel.add_model_path(path):
            raise RuntimeError(window.last_error or "cannot load the model")
        panel = window.assimilation_panel
        panel.samples_spin.setValue(n_samples)
        panel.steps_spin.setValue(steps)
        panel.corrections_spin.setValue(corrections)
        panel.set_device("cpu")
        for _ in range(5):
            app.processEvents()
        ticks: list[float] = []
        previews = [0]

        def count_preview():
            if window.state.preview is not None:   # not the clearing at the end of a run
                previews[0] += 1

        window.state.previewChanged.connect(count_preview)
        timer = QTimer()
        timer.setInterval(interval_ms)
        timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
        timer.start()
        t0 = time.perf_counter()
        if not panel.assimilate():
            raise RuntimeError(window.last_error or "the assimilation did not start")
        window.wait_for(lambda: not panel.runner.running, timeout_s)
        seconds = time.perf_counter() - t0
        timer.stop()
        gaps = np.diff(np.asarray(ticks)) * 1000.0 if len(ticks) > 1 else np.array([np.nan])
        return {"worst_gap_ms": float(np.max(gaps)), "p99_gap_ms": float(np.percentile(gaps, 99)),
                "ticks": len(ticks), "previews": previews[0], "seconds": seconds, "samples": n_samples, "steps": steps,
                "corrections": corrections, "model": path}
    finally:
        window.shutdown()
        window.close()
        window.deleteLater()
        app.processEvents()


def _launch_command() -> list:
    main = Path(__file__).resolve().parents[2] / "main.py"
    if main.exists():
        return [sys.executable, str(main)]
    return [sys.executable, "-c", "import sys; from sda_gui.app.main_window import run; sys.exit(run())"]


def startup_once(timeout_s: float = 120.0, env: Optional[dict] = None) -> dict:
    """Launches the app once (offscreen, fresh settings) and returns ``{stage: seconds}``.

    The app prints when each stage is done (``main_window.TRACE_ENV``) and quits after the
    last one. The clock starts just before the process is spawned, so interpreter start-up
    and every import count.
    """
    from .main_window import TRACE_ENV, TRACE_STAGES

    env = dict(os.environ if env is None else env)   # the whole environment of the app
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="sda-startup-") as tmp:
        cmd = _launch_command() + ["--settings", os.path.join(tmp, "settings.ini")]
        t0 = time.time()
        env[TRACE_ENV] = repr(t0)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
    stages = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "startup":
            stages[parts[1]] = float(parts[2])
    missing = [s for s in TRACE_STAGES if s not in stages]
    if res.returncode != 0 or missing:
        raise RuntimeError(f"start-up trace incomplete (exit {res.returncode}, missing {missing}): "
                           f"{res.stderr.strip()[-1500:]}")
    return stages


def bench_startup(runs: int = 5, warmup: int = 1, timeout_s: float = 120.0) -> dict:
    """Median seconds from launch to each start-up stage over ``runs`` launches.

    ``warmup`` launches first (not counted) let Python write its bytecode caches, as a
    second start of an installed app finds them. Returns ``{stage: median}`` plus
    ``runs``: every launch's stages.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for _ in range(warmup):
        startup_once(timeout_s, env)
    all_runs = [startup_once(timeout_s, env) for _ in range(runs)]
    out: dict = {}
    for stage in all_runs[0]:
        values = [r[stage] for r in all_runs if stage in r]
        out[stage] = statistics.median(values)
    out["runs"] = all_runs
    return out


def run_gui_benchmarks(quick: bool = False) -> dict:
    """Everything ``python -m sda_gui bench gui`` reports."""
    frames = 200 if quick else 600
    out = {}
    for name, kind, kw in (("lorenz96", "lorenz96", {}), ("lorenz63", "lorenz63", {}),
                           ("field64", "field", {"n_samples": 8, "length": 32})):
        r = bench_animation_detailed(frames, kind, **kw)
        out[f"animation_fps_{name}"] = r["fps"]
        out[f"animation_fps_cpu_{name}"] = r["fps_cpu"]
    playback = bench_timer_playback(frames=120 if quick else 480)
    out["timer_playback_fps"] = playback["fps"]
    out["timer_playback_requested_fps"] = playback["requested_fps"]
    out.update({f"event_loop_{k}": v for k, v in
                bench_event_loop_gap_detailed(steps=8 if quick else 32).items()})
    startup = bench_startup(runs=2 if quick else 5)
    out.update({f"startup_{k}_s": v for k, v in startup.items() if k != "runs"})
    return out


if __name__ == "__main__":
    import argparse

    # no options: the same figures as ``python -m sda_gui bench gui``; anything else is refused before work
    argparse.ArgumentParser(prog="python -m sda_gui.app.bench",
                            description="The desktop app's benchmarks (as `python -m sda_gui bench gui`).").parse_args()
    for key, value in run_gui_benchmarks().items():
        print(f"{key}: {value}")
