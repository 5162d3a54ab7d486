"""The whole workflow driven through the main window, as a user would with the mouse."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest


def _click_cell(qtbot, editor, col, row):
    pos = editor.cell_center_in_view(col, row)
    qtbot.mouseClick(editor.plot_widget.viewport(), Qt.MouseButton.LeftButton, pos=pos)


def _drag(qtbot, editor, start, end, steps=8):
    vp = editor.plot_widget.viewport()
    a, b = editor.cell_center_in_view(*start), editor.cell_center_in_view(*end)
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, a)
    for i in range(1, steps + 1):
        p = QPoint(round(a.x() + (b.x() - a.x()) * i / steps), round(a.y() + (b.y() - a.y()) * i / steps))
        QTest.mouseMove(vp, p, 5)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, b)


def _run(qtbot, window, timeout=60_000):
    panel = window.assimilation_panel
    with qtbot.waitSignal(panel.runEnded, timeout=timeout) as blocker:
        assert window.assimilate()
    return blocker.args[0]


def test_default_scenario_is_ready(window):
    st = window.state
    assert st.system.name == "lorenz96" and st.truth.shape == (64, 40)
    assert 0.1 < st.mask.mean() < 0.3          # a sparse pattern is already drawn
    assert not st.values_stale                 # and observed
    assert st.model is not None
    assert window.tabs.currentWidget() is window.grid_editor
    size = window.size()
    assert size.width() <= 1280 and size.height() <= 800


def test_paint_with_the_mouse(window, qtbot):
    editor, st = window.grid_editor, window.state
    editor.clear()
    assert st.editor.count == 0
    _click_cell(qtbot, editor, 10, 5)
    assert st.mask[10, 5] and st.editor.count == 1
    editor.brush_spin.setValue(3)
    _click_cell(qtbot, editor, 30, 20)
    assert st.mask[29:32, 19:22].all() and st.editor.count == 10
    editor.brush_spin.setValue(1)
    _drag(qtbot, editor, (40, 2), (50, 2))     # a horizontal stroke along time
    assert st.mask[40:51, 2].all()
    stroke = st.editor.count
    editor.undo()                              # the whole stroke is one step
    assert st.editor.count == 10
    editor.redo()
    assert st.editor.count == stroke
    editor.set_tool("eraser")
    _click_cell(qtbot, editor, 10, 5)
    assert not st.mask[10, 5]
    editor.set_tool("rectangle")
    _drag(qtbot, editor, (0, 30), (3, 33))
    assert st.mask[0:4, 30:34].all()
    assert f"<b>{st.editor.count}</b> / 2560" in editor.count_label.text()


def test_pattern_tools_and_observations(window):
    editor, st = window.grid_editor, window.state
    editor.regular_pattern(every_time=4, every_space=2)
    assert st.editor.count == 16 * 20
    editor.invert()
    assert st.editor.count == 64 * 40 - 320
    editor.random_pattern(density=0.1, seed=7)
    assert 0.05 < st.mask.mean() < 0.15
    editor.copy_time(source=3)
    assert (st.mask == st.mask[3]).all()
    editor.generate_observations(seed=5, std=0.5)
    obs = st.observation()
    assert obs.std == 0.5 and obs.count == st.editor.count
    resid = obs.values[obs.mask] - st.truth[obs.mask]
    assert 0.3 < resid.std() < 0.7
    editor.std_spin.setValue(0.8)
    assert st.values_stale
    assert st.observation().std == 0.8 and not st.values_stale   # redrawn on demand
    before = st.obs_values.copy()
    editor.obs_seed_spin.setValue(6)
    assert st.values_stale and "out of date" in editor.values_label.text()
    st.observation()
    assert not np.allclose(before, st.obs_values)


def test_assimilate_then_animate(window, qtbot):
    assert _run(qtbot, window) == "finished"
    res = window.state.results
    assert res.samples.shape == (3, 64, 40)
    assert window.tabs.currentWidget() is window.results_view
    view = window.results_view
    assert "spread" in view.metrics and "rmse" in view.metrics and "residual_std" in view.metrics
    # playback advances by itself
    start = view.frame
    view.set_speed(100)
    view.play()
    qtbot.waitUntil(lambda: view.frame != start, timeout=3000)
    view.pause()
    view.set_frame(10)
    view.step(1)
    assert view.frame == 11 and view.slider.value() == 11
    for mode in ("one", "spread", "all"):
        view.set_mode(mode, sample=1)
        view.step(1)


def test_cancel_mid_run_and_run_again(window, qtbot):
    panel = window.assimilation_panel
    panel.steps_spin.setValue(500)
    with qtbot.waitSignal(panel.runner.progress, timeout=30_000):
        assert window.assimilate()
    assert not window.assimilate()              # one run at a time
    with qtbot.waitSignal(panel.runEnded, timeout=10_000) as blocker:
        window.cancel()
    assert blocker.args == ["cancelled"]
    assert window.state.results is None and window.state.preview is None
    panel.steps_spin.setValue(4)
    assert _run(qtbot, window) == "finished"
    assert window.state.results.samples.shape[0] == 3


def test_errors_leave_the_state_intact(window, qtbot, tmp_path):
    st = window.state
    truth, mask = st.truth.copy(), st.mask.copy()
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"this is not HDF5")
    assert not window.system_panel.load_file(str(bad))
    assert "broken.h5" in window.system_panel.error.text() and not window.system_panel.error.isHidden()
    nan = tmp_path / "nan.npy"
    x = np.zeros((2, 16, 40), np.float32)
    x[0, 3, 4] = np.nan
    np.save(nan, x)
    assert not window.system_panel.load_file(str(nan))
    assert "NaN" in window.system_panel.error.text()
    assert not window.grid_editor.load_observations(str(bad))
    assert not window.grid_editor.error.isHidden()
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mask=np.ones((5, 3), bool), values=np.zeros((5, 3)), std=1.0)
    assert not window.grid_editor.load_observations(str(wrong))
    assert not window.assimilation_panel.select_model(str(bad))
    assert "cannot use model" in window.assimilation_panel.error.text()
    assert np.array_equal(st.truth, truth) and np.array_equal(st.mask, mask)
    assert st.model is not None
    # an empty pattern cannot be assimilated, and says so
    window.grid_editor.clear()
    assert not window.assimilate()
    assert "empty" in window.assimilation_panel.error.text()
    window.grid_editor.undo()
    assert _run(qtbot, window) == "finished"


def test_failure_in_the_worker_is_shown(window, qtbot, monkeypatch):
    # the worker runs SDA through the method interface: its sampler call is the one that fails
    import sda_gui.core.methods.sda as sda_method

    def boom(*a, **k):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(sda_method, "assimilate", boom)
    assert _run(qtbot, window) == "failed"
    text = window.assimilation_panel.error.text()
    assert "not enough memory on the GPU" in text and "the CPU" in text and "\n" not in text
    assert window.assimilation_panel.assimilate_button.isEnabled()
    assert window.state.truth is not None


def test_session_roundtrip(window, qtbot, tmp_path):
    assert _run(qtbot, window) == "finished"
    st = window.state
    window.assimilation_panel.steps_spin.setValue(7)
    path = tmp_path / "session.h5"
    assert window.save_session(str(path))
    truth, mask, values = st.truth.copy(), st.mask.copy(), st.obs_values.copy()
    samples = st.results.samples.copy()
    window.load_default_scenario()
    window.grid_editor.random_pattern(0.5, 9)
    window.assimilation_panel.steps_spin.setValue(3)
    assert window.open_session(str(path))
    assert np.array_equal(st.truth, truth) and np.array_equal(st.mask, mask)
    assert np.allclose(st.obs_values, values, equal_nan=True)
    assert np.array_equal(st.results.samples, samples)
    assert window.assimilation_panel.steps_spin.value() == 7
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"garbage")
    assert not window.open_session(str(bad))
    assert "bad.h5" in window.last_error
    assert np.array_equal(st.results.samples, samples)


def test_observation_files_roundtrip(window, tmp_path):
    st = window.state
    path = tmp_path / "obs.npz"
    assert window.grid_editor.save_observations(str(path))
    mask, obs = st.mask.copy(), st.observation()
    window.grid_editor.clear()
    assert window.grid_editor.load_observations(str(path))
    assert np.array_equal(st.mask, mask)
    again = st.observation(regenerate=False)
    assert np.allclose(again.values[mask], obs.values[mask], atol=1e-5)
    h5 = tmp_path / "obs.h5"
    assert window.grid_editor.save_observations(str(h5))
    assert window.grid_editor.load_observations(str(h5))


def test_exports(window, qtbot, tmp_path):
    assert window.export_view_png(str(tmp_path / "grid.png"))
    assert not window.export_animation(str(tmp_path / "none.gif"))   # nothing to animate yet
    assert _run(qtbot, window) == "finished"
    window.results_view.pause()
    assert window.export_view_png(str(tmp_path / "results.png"))
    gif = tmp_path / "anim.gif"
    assert window.export_animation(str(gif), fps=20, max_frames=12), window.last_error
    import imageio.v3 as iio

    frames = iio.imread(gif, index=None)
    assert frames.shape[0] == 12 and (tmp_path / "results.png").stat().st_size > 10_000


def test_settings_are_remembered(qtbot, settings_path, tiny_model_path):
    from sda_gui.app.main_window import MainWindow

    w = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w)
    w.assimilation_panel.steps_spin.setValue(33)
    w.assimilation_panel.set_guidance("dps")
    w.close()
    w2 = MainWindow(settings_path=str(settings_path))
    qtbot.addWidget(w2)
    assert w2.assimilation_panel.steps_spin.value() == 33
    assert w2.assimilation_panel.sampler_settings()["guidance"] == "dps"
    w2.shutdown()


def test_asks_before_discarding_unsaved_work(window, qtbot, tmp_path):
    st, sp = window.state, window.system_panel
    asked = []
    window.confirm = lambda text: asked.append(text) or False
    assert not st.unsaved_work()                        # the default scenario needs no saving
    assert window.new_scenario() and not asked
    assert _run(qtbot, window) == "finished"
    results = st.results
    assert not window.new_scenario()                    # declined: nothing changes
    assert asked and "the results" in asked[-1] and st.results is results
    _click_cell(qtbot, window.grid_editor, 1, 1)        # the user's own pattern
    mask = st.mask.copy()
    sp.length_spin.setValue(48)                         # another length: the pattern would go
    assert not sp.simulate(ask=True)
    assert "the observation pattern" in asked[-1] and not sp.runner.running
    sp.length_spin.setValue(64)                          # the same grid keeps pattern and results: no question
    n = len(asked)
    with qtbot.waitSignal(st.truthChanged, timeout=30_000):
        assert sp.simulate(ask=True)
    assert len(asked) == n and np.array_equal(st.mask, mask)
    assert window.save_session(str(tmp_path / "s.h5"))
    assert not st.unsaved_work() and window.new_scenario() and len(asked) == n
    assert window.open_session(str(tmp_path / "s.h5"), ask=True) and len(asked) == n


def test_loaded_observation_values_survive_a_new_truth(window, qtbot, tmp_path):
    st, ed, sp = window.state, window.grid_editor, window.system_panel
    path = tmp_path / "obs.npz"
    assert ed.save_observations(str(path))
    assert ed.load_observations(str(path))
    values = st.obs_values.copy()
    messages = []
    st.message.connect(messages.append)
    sp.seed_spin.setValue(5)
    with qtbot.waitSignal(st.truthChanged, timeout=30_000):
        assert sp.simulate()
    assert np.array_equal(st.obs_values, values, equal_nan=True)    # measurements, not the truth's
    assert any("loaded from a file are kept" in m for m in messages)
    assert not st.values_stale
    obs = st.observation()                               # the next run uses them, not new draws
    assert np.allclose(obs.values[obs.mask], values[obs.mask])
