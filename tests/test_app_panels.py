"""System and training panels, the screenshot mode and the GUI benchmarks."""

from __future__ import annotations

import numpy as np
import pytest


def test_simulate_another_system(window, qtbot):
    sp = window.system_panel
    sp.set_system_name("lorenz63")
    sp.set_param("rho", 30.0)
    sp.length_spin.setValue(40)
    sp.seed_spin.setValue(3)
    with qtbot.waitSignal(window.state.truthChanged, timeout=30_000):
        assert sp.simulate()
    st = window.state
    assert st.system.name == "lorenz63" and st.system.rho == 30.0
    assert st.truth.shape == (40, 3) and st.mask.shape == (40, 3) and st.editor.count == 0
    assert window.results_view.shown is None
    # the tiny model is for Lorenz-96: nothing to assimilate with until one is trained or chosen
    if st.model is None:
        assert not window.assimilation_panel.assimilate_button.isEnabled()
    window.grid_editor.regular_pattern(every_time=4, every_space=1)
    assert st.editor.count == 10 * 3


def test_cancel_simulation_keeps_truth(window, qtbot):
    sp = window.system_panel
    truth = window.state.truth.copy()
    sp.length_spin.setValue(4000)
    with qtbot.waitSignal(sp.runner.progress, timeout=30_000):
        sp.simulate()
    with qtbot.waitSignal(sp.runner.cancelled, timeout=30_000):
        sp.cancel()
    assert np.array_equal(window.state.truth, truth)
    assert "cancelled" in sp.error.text()


def test_load_trajectories(window, tmp_path):
    from sda_gui.core.datasets import save_trajectories
    from sda_gui.core.systems import make_system

    sp, st = window.system_panel, window.state
    x = np.random.default_rng(0).normal(size=(4, 32, 40)).astype(np.float32)
    np.save(tmp_path / "l96.npy", x)
    assert sp.load_file(str(tmp_path / "l96.npy"))
    # a file naming no system is data of its own, never a built-in system guessed from its shape
    assert st.system.name == "l96" and not st.system.has_dynamics and np.array_equal(st.truth, x[0])
    sp.traj_spin.setValue(2)
    assert np.array_equal(st.truth, x[2]) and st.dataset.shape == (4, 32, 40)
    assert window.training_panel.data_combo.findData("loaded") >= 0
    l63 = make_system("lorenz63", rho=25.0)
    save_trajectories(tmp_path / "l63.h5", l63.simulate(2, 20, seed=1), l63)
    assert sp.load_file(str(tmp_path / "l63.h5"))
    assert st.system.name == "lorenz63" and st.system.rho == 25.0 and st.truth.shape == (20, 3)
    assert sp.system_name == "lorenz63"
    np.savez(tmp_path / "odd.npz", a=np.zeros((2, 10, 7, 5)), b=np.zeros(3))
    assert not sp.load_file(str(tmp_path / "odd.npz"))
    assert st.system.name == "lorenz63"


def test_train_save_and_select(window, qtbot, tmp_path):
    tp = window.training_panel
    tp.n_traj_spin.setValue(8)
    tp.traj_len_spin.setValue(24)
    tp.k_spin.setValue(1)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    tp.steps_spin.setValue(40)
    tp.batch_spin.setValue(16)
    with qtbot.waitSignal(tp.trainingEnded, timeout=60_000) as blocker:
        assert tp.train()
    assert blocker.args == ["finished"]
    xs, ys = tp.train_curve.getData()
    assert len(xs) > 3 and np.all(np.isfinite(ys))
    assert len(tp.val_curve.getData()[0]) >= 1
    path = tmp_path / "mine.pt"
    assert tp.save_model(str(path)) == str(path)
    panel = window.assimilation_panel
    assert panel.model_combo.currentData() == str(path)
    assert window.state.model_path == str(path) and window.state.model.k == 1


def test_stop_training_keeps_the_model(window, qtbot):
    tp = window.training_panel
    tp.n_traj_spin.setValue(4)
    tp.traj_len_spin.setValue(16)
    tp.width_spin.setValue(8)
    tp.depth_spin.setValue(1)
    tp.batch_spin.setValue(8)
    tp.steps_spin.setValue(1_000_000)
    assert tp.train()
    qtbot.waitUntil(lambda: len(tp._steps) > 0, timeout=60_000)
    with qtbot.waitSignal(tp.trainingEnded, timeout=30_000) as blocker:
        tp.cancel()
    assert blocker.args == ["stopped"]
    assert tp.model is not None and tp.save_button.isEnabled()


def test_screenshot_method(window, tmp_path):
    path = tmp_path / "shot.png"
    assert window.screenshot(str(path), samples=2, steps=3)
    from PySide6.QtGui import QImage

    img = QImage(str(path))
    assert img.width() == window.width() and img.height() == window.height()
    assert window.state.results is not None


@pytest.mark.slow
def test_screenshot_command(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "shot.png"
    res = subprocess.run([sys.executable, "main.py", "--screenshot", str(out), "--settings", str(tmp_path / "s.ini")],
                         capture_output=True, text=True, timeout=900, env={**__import__("os").environ,
                                                                           "QT_QPA_PLATFORM": "offscreen"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert out.stat().st_size > 20_000


def test_benchmarks_run(qtbot, tiny_model_path):
    from sda_gui.app.bench import bench_animation, bench_event_loop_gap_detailed

    assert bench_animation(frames=10, kind="lorenz96") > 0
    assert bench_animation(frames=10, kind="field", n_samples=2, length=8) > 0
    r = bench_event_loop_gap_detailed(n_samples=2, steps=16, corrections=1, model_path=tiny_model_path)
    assert r["ticks"] > 1 and np.isfinite(r["worst_gap_ms"])


def _fake_flow(length=6, size=16):
    """A smooth velocity field on the Kolmogorov grid, without running the solver."""
    import torch

    from sda_gui.core.systems.kolmogorov import velocity_from_vorticity

    x = np.linspace(0, 2 * np.pi, size, endpoint=False)
    X, Y = np.meshgrid(x, x, indexing="ij")
    w = np.stack([np.sin(4 * Y + 0.3 * t) + 0.5 * np.cos(2 * X - 0.2 * t) for t in range(length)])
    return velocity_from_vorticity(torch.tensor(w, dtype=torch.float32)).numpy()


def test_field_editor_paints_at_the_chosen_time(window, qtbot):
    from PySide6.QtCore import Qt

    from sda_gui.core.systems import make_system

    st, ed = window.state, window.grid_editor
    uv = _fake_flow()
    st.set_truth(uv, system=make_system("kolmogorov", size=16, resolution=64), source="test")
    assert st.mask.shape == (6, 2, 16, 16) and ed.is_field and not ed.time_row.isHidden()
    ed.set_time(3)
    pos = ed.cell_center_in_view(5, 9)                      # column = x, row = y
    qtbot.mouseClick(ed.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    assert st.mask[3, :, 5, 9].all() and st.editor.count == 2
    ed.channel_combo.setCurrentIndex(ed.channel_combo.findData(1))   # "v only"
    ed.paint_cell(0, 0)
    assert st.mask[3, 1, 0, 0] and not st.mask[3, 0, 0, 0]
    ed.copy_time()                                           # the time shown → every time
    assert st.editor.count == 6 * 3
    ed.regular_pattern(every_time=2, every_space=4)
    assert st.editor.count == 3 * 2 * 4 * 4
    ed.display_combo.setCurrentIndex(ed.display_combo.findData(0))   # u instead of vorticity
    ed.show_hover((5, 9))
    assert "x=5, y=9" in ed.hover_label.text()


def test_field_results_view(window):
    from sda_gui.app.state import Results
    from sda_gui.core.systems import make_system

    st = window.state
    uv = _fake_flow()
    st.set_truth(uv, system=make_system("kolmogorov", size=16, resolution=64), source="test")
    window.grid_editor.regular_pattern(1, 4)
    samples = uv[None] + 0.1 * np.random.default_rng(0).standard_normal((3, *uv.shape)).astype(np.float32)
    st.set_results(Results(samples=samples, observation=st.observation(), truth=uv))
    view = window.results_view
    assert view.metrics["rmse"] < 0.1
    for t in range(6):
        view.step(1)
    view.set_mode("spread")
    view.step(1)


def test_hover_and_mp4_message(window, tmp_path, qtbot):
    ed = window.grid_editor
    ed.show_hover((7, 3))
    text = ed.hover_label.text()
    assert "time step 7" in text and "j = 3" in text and "truth" in text
    ed.show_hover(None)
    from sda_gui.app.export import mp4_available

    window.state.set_results(__import__("sda_gui.app.state", fromlist=["Results"]).Results(
        samples=window.state.truth[None].copy(), observation=window.state.observation(),
        truth=window.state.truth))
    if mp4_available():
        assert window.export_animation(str(tmp_path / "a.mp4"))
        assert (tmp_path / "a.mp4").stat().st_size > 1000
    else:
        assert not window.export_animation(str(tmp_path / "a.mp4"))
        assert "imageio-ffmpeg" in window.last_error


def test_last_folder_is_remembered(window, tmp_path):
    np.save(tmp_path / "t.npy", np.zeros((1, 16, 40), np.float32))
    assert window.system_panel.load_file(str(tmp_path / "t.npy"))
    assert window.settings.value("last_folder") == str(tmp_path)


def test_each_system_gets_its_own_sampler_defaults(window, qtbot):
    from sda_gui.app.sampler_config import system_defaults

    panel, sp = window.assimilation_panel, window.system_panel
    sp.set_system_name("lorenz63")
    sp.length_spin.setValue(40)
    with qtbot.waitSignal(window.state.truthChanged, timeout=30_000):
        assert sp.simulate()
    s = panel.sampler_settings()
    l63 = system_defaults("lorenz63")
    assert (s["steps"], s["corrections"], s["n_samples"]) == (l63["steps"], l63["corrections"], l63["n_samples"])
    assert (s["tau"], s["gamma"]) == (l63["tau"], l63["gamma"]) and l63["tau"] == 1.0
    assert l63["steps"] >= 64 and l63["corrections"] >= 1
    panel.steps_spin.setValue(70)
    sp.seed_spin.setValue(4)                           # another truth of the same system keeps the user's choice
    with qtbot.waitSignal(window.state.truthChanged, timeout=30_000):
        assert sp.simulate()
    assert panel.steps_spin.value() == 70
    sp.set_system_name("lorenz96")
    with qtbot.waitSignal(window.state.truthChanged, timeout=30_000):
        assert sp.simulate()
    assert panel.steps_spin.value() == system_defaults("lorenz96")["steps"]    # not Lorenz-63's
    assert system_defaults("kolmogorov")["n_samples"] < system_defaults("lorenz96")["n_samples"]


def test_lorenz63_defaults_fit_the_observations(one_torch_thread):
    """With the shipped model, the default steps and C keep the residual near σ_y (no blow-up)."""
    from sda_gui.app.sampler_config import system_defaults
    from sda_gui.core.diffusion.checkpoint import load_checkpoint, shipped_model_paths
    from sda_gui.core.methods.registry import run_method
    from sda_gui.core.observation import synthesize
    from sda_gui.core.systems import make_system

    system = make_system("lorenz63")
    truth = system.simulate(1, 65, seed=0)[0].numpy()
    mask = np.zeros(truth.shape, bool)
    mask[::8] = True                                    # every 8th state, all variables
    obs = synthesize(truth, mask, 0.4, seed=0)
    d = system_defaults("lorenz63")
    x = run_method("sda", system, obs, d["n_samples"], {"steps": d["steps"], "corrections": d["corrections"],
                                                         "tau": d["tau"]}, model=load_checkpoint(
        shipped_model_paths("lorenz63", "cpu")[0]), seed=0).members.numpy()
    residual = float((x[:, mask] - obs.values[mask]).std())
    assert 0.5 * 0.4 < residual < 1.5 * 0.4, residual
    assert np.abs(x).max() < 60                         # on the attractor, no spikes


def test_cancel_never_claims_results_that_are_not_shown(window, qtbot):
    panel, st = window.assimilation_panel, window.state
    with qtbot.waitSignal(panel.runEnded, timeout=60_000):
        assert window.assimilate()
    messages = []
    st.message.connect(messages.append)
    panel.steps_spin.setValue(4000)
    with qtbot.waitSignal(panel.runner.progress, timeout=30_000):
        assert window.assimilate()
    with qtbot.waitSignal(panel.runEnded, timeout=30_000):
        window.cancel()
    assert messages[-1] == "assimilation cancelled; the earlier results are kept"
    sp = window.system_panel
    sp.set_system_name("lorenz63")
    with qtbot.waitSignal(st.truthChanged, timeout=30_000):
        assert sp.simulate()
    assert window.results_view.shown is None          # those results were Lorenz-96's
    if st.model is not None:                           # the shipped Lorenz-63 model
        panel.steps_spin.setValue(4000)
        with qtbot.waitSignal(panel.runner.progress, timeout=30_000):
            window.grid_editor.regular_pattern(every_time=4, every_space=1)
            assert window.assimilate()
        with qtbot.waitSignal(panel.runEnded, timeout=30_000):
            window.cancel()
        assert messages[-1] == "assimilation cancelled; no results yet"


def test_a_run_that_cannot_fit_in_memory_is_refused_before_it_starts(window, monkeypatch):
    from sda_gui.app import run_memory

    panel, st = window.assimilation_panel, window.state
    plan = run_memory.plan_run(st.model, 8, 64, "cpu")
    assert plan.needed > 8 * 64 * 40 * 4 * run_memory.TRAJECTORY_COPIES    # activations counted too
    assert run_memory.activation_numbers(st.model) > st.model.window * 40
    monkeypatch.setattr(run_memory, "available_bytes", lambda device: 64 * 2**20)
    panel.samples_spin.setValue(4096)
    assert not window.assimilate()
    text = panel.error.text()
    most = run_memory.plan_run(st.model, 4096, 64, "cpu").max_samples
    assert 1 <= most < 4096 and f"use at most {most} samples" in text and "\n" not in text
    assert not panel.runner.running and st.results is None and st.preview is None
    panel.samples_spin.setValue(most)
    assert run_memory.plan_run(st.model, most, 64, "cpu").fits


def test_out_of_memory_in_the_worker_is_one_line(window, qtbot, monkeypatch):
    import sda_gui.core.methods.sda as sda_method

    def boom(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(sda_method, "assimilate", boom)
    truth = window.state.truth.copy()
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=60_000) as blocker:
        assert window.assimilate()
    assert blocker.args == ["failed"]
    text = window.assimilation_panel.error.text()
    assert "not enough memory on this computer" in text and "fewer samples" in text
    assert np.array_equal(window.state.truth, truth) and window.state.results is None


def test_the_worker_runs_sda_through_the_method_interface(window, qtbot, monkeypatch):
    import sda_gui.core.methods.registry as registry

    calls = []
    real = registry.run_method

    def spy(name, *args, **kwargs):
        calls.append((name, kwargs.get("device"), args[2]))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(registry, "run_method", spy)
    with qtbot.waitSignal(window.assimilation_panel.runEnded, timeout=60_000) as blocker:
        assert window.assimilate()
    assert blocker.args == ["finished"]
    assert calls == [("sda", calls[0][1], 3)] and str(calls[0][1]) == "cpu"
    assert window.state.results.samples.shape == (3, 64, 40)


def test_a_system_file_adds_its_system_and_a_bad_one_is_one_line(window, qtbot, tmp_path, restore_registries):
    from pathlib import Path

    panel = window.system_panel
    example = Path(__file__).resolve().parents[1] / "examples" / "lorenz84.py"
    assert panel.load_system_file(str(example))
    assert panel.system_name == "lorenz84"
    with qtbot.waitSignal(panel.runner.finished, timeout=120_000):
        assert panel.simulate()
    assert window.state.system.name == "lorenz84" and window.state.truth.shape[1:] == (3,)
    bad = tmp_path / "broken.py"
    bad.write_text("import nothing_here_at_all\n")
    assert not panel.load_system_file(str(bad))
    assert "broken.py" in window.last_error and "\n" not in window.last_error
    assert window.state.system.name == "lorenz84"
