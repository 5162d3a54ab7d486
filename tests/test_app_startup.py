"""Start-up: the window and the default scenario come up before torch; the engine follows.

``python main.py`` builds the window without the engine (torch + ``sda_gui.core``),
shows the default scenario from the file the core wrote, then loads the engine on a
background thread. These tests check each part: nothing heavy is imported before the
window shows, the stored scenario is the core's, the engine loader, and a window whose
Assimilate waits for the engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the steps of ``run()`` in a fresh interpreter, reporting which heavy modules are loaded
_WINDOW_BEFORE_ENGINE = r"""
import json, sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
heavy = lambda: sorted(m for m in sys.modules if m == "torch" or m.startswith("sda_gui.core") or m == "scipy")
out = {}
from sda_gui.app.window import MainWindow
print("IMPORTED " + json.dumps(heavy()), flush=True)
w = MainWindow(settings_path=sys.argv[1], load_default=False, wait_engine=False)
w.show()
w.load_default_scenario()
app.processEvents()
st = w.state
out["after_scenario"] = heavy()
out["scenario"] = {"system": st.system.name, "pending": bool(getattr(st.system, "pending", False)),
                   "truth": list(st.truth.shape), "observed": int(st.mask.sum()),
                   "values": st.obs_values is not None and not st.values_stale,
                   "assimilate_enabled": w.assimilation_panel.assimilate_button.isEnabled()}
w.start_engine()
ok = w.wait_for(lambda: st.model is not None, 120)
out["after_engine"] = {"model": ok, "torch": "torch" in sys.modules, "engine_loaded": st.engine_loaded,
                       "pending": bool(getattr(st.system, "pending", False)),
                       "assimilate_enabled": w.assimilation_panel.assimilate_button.isEnabled(),
                       "systems": w.system_panel.system_combo.count()}
w.shutdown()
print("RESULT " + json.dumps(out))
"""


def test_window_and_default_scenario_come_up_before_torch(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-c", _WINDOW_BEFORE_ENGINE, str(tmp_path / "s.ini")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    lines = res.stdout.splitlines()
    imported = [json.loads(line[9:]) for line in lines if line.startswith("IMPORTED ")]
    # importing the window loads neither torch nor the core (nor scipy)
    assert imported == [[]], (imported, res.stderr[-3000:])
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(next(line for line in lines if line.startswith("RESULT "))[7:])
    # nor does building, showing and filling it with the whole default scenario
    assert out["after_scenario"] == []
    sc = out["scenario"]
    assert sc["system"] == "lorenz96" and sc["pending"] and sc["truth"] == [64, 40]
    assert 0.15 * 64 * 40 < sc["observed"] < 0.25 * 64 * 40 and sc["values"]
    assert not sc["assimilate_enabled"]          # no model yet
    # then the engine loads in the background and completes the window
    eng = out["after_engine"]
    assert eng == {"model": True, "torch": True, "engine_loaded": True, "pending": False,
                   "assimilate_enabled": True, "systems": eng["systems"]}
    assert eng["systems"] >= 3


def test_stored_default_scenario_is_the_cores():
    from sda_gui.app import scenario

    cached = scenario.cached_default()
    assert cached is not None, "default_scenario.npz is missing: python -m sda_gui.app.scenario writes it"
    info, truth = cached
    system, core_truth = scenario.simulate_default()
    assert info.describes(system), (info.config(), system.config())
    assert truth.dtype == np.float32 and truth.shape == core_truth.shape
    np.testing.assert_allclose(truth, core_truth, rtol=0, atol=1e-5)


def test_direct_observations_without_the_engine_match_the_core():
    from sda_gui.app.scenario import synthesize_direct
    from sda_gui.core.observation import synthesize

    truth = np.random.default_rng(3).standard_normal((16, 40)).astype(np.float32)
    for std, seed in ((1.0, 0), (0.3, 7)):
        core = synthesize(truth, np.ones(truth.shape, bool), std, seed=seed).values
        np.testing.assert_array_equal(synthesize_direct(truth, std, seed), core)


def test_system_info_stands_for_the_system_until_the_engine():
    from sda_gui.app.scenario import SystemInfo
    from sda_gui.core.systems import make_system

    real = make_system("lorenz96", n=12)
    info = SystemInfo.of(real)
    assert info.describes(real) and info.dt == real.dt and info.config() == real.config()
    assert not info.describes(make_system("lorenz96", n=16))
    try:
        info.simulate(1, 4)
    except AttributeError as exc:
        assert "engine" in str(exc)
    else:
        raise AssertionError("a description cannot simulate")


def test_engine_loads_once_in_the_background_and_calls_back():
    from sda_gui.app.engine import Engine

    gate, seen = threading.Event(), []
    eng = Engine(modules=("colorsys",), warm_up=("this_module_does_not_exist_sda",))
    assert not eng.started and eng.ready() == ("colorsys" in sys.modules)
    eng.on_ready(lambda: seen.append(threading.current_thread().name))
    assert eng.start(tasks=[gate.wait])
    assert not eng.start()                 # once
    assert not eng.ready() and not eng.wait(timeout=0.05)   # the task holds it back
    gate.set()
    assert eng.wait(timeout=120) and eng.ready()
    assert seen == ["sda-engine"] and eng.error is None
    eng.on_ready(lambda: seen.append("now"))  # after loading: at once, on the caller's thread
    assert seen[-1] == "now"


def test_engine_loads_on_the_callers_thread_when_nobody_started_it():
    from sda_gui.app.engine import Engine

    eng = Engine(modules=("colorsys",), warm_up=())
    seen = []
    eng.on_ready(lambda: seen.append(threading.current_thread().name))
    assert eng.wait() and eng.ready() and not eng.start()
    assert seen == [threading.current_thread().name]


def test_assimilate_pressed_while_the_engine_loads_runs_when_it_is_ready(qtbot, settings_path, monkeypatch,
                                                                          one_torch_thread):
    from sda_gui.app import engine as engine_module
    from sda_gui.app.engine import Engine
    from sda_gui.app.main_window import MainWindow

    gate = threading.Event()
    eng = Engine()
    eng.start(tasks=[gate.wait])          # "loading" until the gate opens
    monkeypatch.setattr(engine_module, "ENGINE", eng)
    w = MainWindow(settings_path=str(settings_path), load_default=False, wait_engine=False)
    qtbot.addWidget(w)
    w.show()
    w.load_default_scenario()
    st, panel = w.state, w.assimilation_panel
    try:
        assert not st.engine_loaded and getattr(st.system, "pending", False)
        assert st.truth.shape == (64, 40) and st.editor.count > 0 and not st.values_stale
        assert not panel.assimilate_button.isEnabled() and st.model is None
        assert "Loading" in panel.model_info.text()
        assert w.system_panel.system_combo.count() == 1   # only the loaded system's description
        panel.samples_spin.setValue(2)
        panel.steps_spin.setValue(3)
        panel.set_device("cpu")
        assert not w.assimilate()             # not now: it waits for the engine
        assert not panel.runner.running
        w.start_engine()
        gate.set()
        qtbot.waitUntil(lambda: st.engine_loaded, timeout=60_000)
        assert not getattr(st.system, "pending", False) and st.model is not None
        assert w.system_panel.system_combo.count() >= 3
        # the queued run started by itself and finishes with results for the same truth
        qtbot.waitUntil(lambda: st.results is not None and not panel.runner.running, timeout=120_000)
        assert st.results.samples.shape == (2, 64, 40)
        assert st.results.truth is not None and np.array_equal(st.results.truth, st.truth)
    finally:
        gate.set()
        w.shutdown()


def test_startup_trace_reports_every_stage(tmp_path):
    from sda_gui.app.bench import startup_once
    from sda_gui.app.main_window import TRACE_STAGES

    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    stages = startup_once(timeout_s=300, env=env)
    assert set(TRACE_STAGES) <= set(stages)
    assert 0 < stages["window_shown"] <= stages["scenario_ready"] <= stages["model_ready"]
