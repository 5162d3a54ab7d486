"""Live controls: auto-run after changes (debounced, the running job cancelled first) and the ghost.

The window tests run the tiny Lorenz-96 model of ``conftest`` with the debounce set to
0 ms: a change schedules the rerun for the next turn of the event loop, so "two quick
changes" are two changes made before the loop runs again. Nothing here measures time:
runs are counted and waited for by their signals.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from sda_gui.core.observation import synthesize


def _record(panel):
    """Lists the panel's starts (with how many runs had ended by then) and the endings."""
    starts, ended = [], []
    panel.runStarted.connect(lambda: starts.append(len(ended)))
    panel.runEnded.connect(ended.append)
    return starts, ended


def _labels(legend) -> list[str]:
    return [label.text for _, label in legend.items]


def _mean(samples) -> np.ndarray:
    from sda_gui.app.plots.data import finite_samples, mean_std

    return mean_std(finite_samples(samples))[0]


def _live(window):
    panel = window.assimilation_panel
    panel.live.delay_ms = 0
    panel.auto_check.setChecked(True)
    return panel, panel.live


def test_auto_run_is_off_by_default_and_offered_for_small_systems(window):
    panel = window.assimilation_panel
    assert not panel.auto_check.isChecked()
    assert panel.auto_check.isEnabled() and "Rerun" in panel.auto_check.toolTip()
    assert 400 <= panel.live.delay_ms <= 600 and panel.live.timer.isSingleShot()


def test_two_quick_changes_start_exactly_one_run(window, qtbot, one_torch_thread):
    panel, live = _live(window)
    starts, ended = _record(panel)
    ed = window.grid_editor
    panel.corrections_spin.setValue(1)
    ed.paint_cell(2, 3)
    assert live.pending and live.launches == 0
    # a stroke still held down is one change in the making: the rerun waits for its release
    ed.begin_stroke((5, 7))
    live.flush()
    assert live.launches == 0 and live.timer.isActive()
    ed.end_stroke()
    qtbot.waitUntil(lambda: ended == ["finished"], timeout=60_000)
    assert starts == [0] and live.launches == 1 and not live.pending
    res = window.state.results
    assert res.settings["corrections"] == 1 and res.observation.mask[2, 3] and res.observation.mask[5, 7]
    # painting alone keeps the editor in front; the results still arrive
    window.tabs.setCurrentWidget(ed)
    ed.paint_cell(9, 9)
    qtbot.waitUntil(lambda: len(ended) == 2, timeout=60_000)
    assert ended == ["finished", "finished"] and window.tabs.currentWidget() is ed
    assert window.state.results is not res and window.state.results.observation.mask[9, 9]


def test_a_change_while_a_job_runs_cancels_it_and_runs_once_more(window, qtbot, one_torch_thread):
    panel = window.assimilation_panel
    panel.steps_spin.setValue(400)
    starts, ended = _record(panel)
    with qtbot.waitSignal(panel.runner.progress, timeout=30_000):
        assert window.assimilate()
    live = _live(window)[1]
    panel.steps_spin.setValue(4)
    qtbot.waitUntil(lambda: len(ended) == 2, timeout=60_000)
    assert ended == ["cancelled", "finished"]
    # the second run started only once the first had ended: never two jobs at once
    assert starts == [0, 1] and live.launches == 1 and not live.pending
    assert window.state.results.settings["steps"] == 4 and not panel.runner.running


def test_no_run_while_auto_run_is_off(window, qtbot):
    panel = window.assimilation_panel
    starts, _ = _record(panel)
    panel.live.delay_ms = 0
    panel.corrections_spin.setValue(2)
    panel.gamma_spin.setValue(0.05)
    window.grid_editor.paint_cell(4, 4)
    assert not panel.live.pending
    qtbot.wait(100)
    assert starts == [] and panel.live.launches == 0 and not panel.runner.running


def test_an_invalid_setup_starts_nothing_and_says_why(window, qtbot):
    panel, live = _live(window)
    starts, _ = _record(panel)
    window.grid_editor.clear()      # no observations left
    qtbot.waitUntil(lambda: live.launches == 1, timeout=30_000)
    assert starts == [] and not panel.runner.running
    assert panel.error.isVisible() and "\n" not in window.last_error and window.last_error


def test_nothing_starts_after_the_window_shut_down(window, qtbot):
    panel, live = _live(window)
    panel.corrections_spin.setValue(2)
    assert live.pending
    window.shutdown()
    assert not live.pending
    qtbot.wait(100)
    assert live.launches == 0 and not panel.runner.running


def test_the_previous_result_stays_as_a_ghost(window, qtbot, one_torch_thread):
    panel, view = window.assimilation_panel, window.results_view
    starts, ended = _record(panel)
    assert window.assimilate()
    qtbot.waitUntil(lambda: len(ended) == 1, timeout=60_000)
    first = window.state.results
    assert view.ghost is None and not view.plots.ghost_item.isVisible()
    assert "previous" not in _labels(view.plots.legend)
    panel.seed_spin.setValue(7)
    assert window.assimilate()
    qtbot.waitUntil(lambda: len(ended) == 2, timeout=60_000)
    assert ended == ["finished", "finished"] and window.state.results is not first
    mean1 = _mean(first.samples)
    assert np.allclose(view.ghost["mean"], mean1, equal_nan=True)
    plots = view.plots
    view.pause()
    view.set_frame(5)
    ok = np.isfinite(mean1[5])
    assert plots.ghost_item.isVisible() and np.allclose(plots.ghost_item.getData()[1], mean1[5][ok])
    assert plots.ghost_item.opts["pen"].style() == Qt.PenStyle.DashLine
    assert "previous" in _labels(plots.legend)
    view.previous_check.setChecked(False)
    assert not plots.ghost_item.isVisible() and "previous" not in _labels(plots.legend)
    view.previous_check.setChecked(True)
    assert plots.ghost_item.isVisible() and "previous" in _labels(plots.legend)


def test_low_dim_ghost_band_and_a_field_has_none(qtbot):
    from sda_gui.app.plotting import configure_pyqtgraph
    from sda_gui.app.results_view import ResultsView
    from sda_gui.app.state import AppState, Results
    from sda_gui.core.systems import make_system

    configure_pyqtgraph()
    system = make_system("lorenz63")
    truth = system.simulate(1, 33, seed=0)[0].numpy()
    mask = np.zeros(truth.shape, bool)
    mask[::4] = True
    obs = synthesize(truth, mask, 0.5, seed=0)
    rng = np.random.default_rng(0)
    runs = [Results(samples=(truth[None] + s * rng.standard_normal((4, *truth.shape))).astype(np.float32),
                    observation=obs, truth=truth, settings={}) for s in (0.5, 2.0, 1.0)]
    state = AppState()
    state.system = system
    view = ResultsView(state)
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    state.set_results(runs[0])
    items = view.plots.var_plots[0]
    assert not items["ghost"].isVisible()
    state.set_results(runs[1])
    assert items["ghost"].isVisible() and np.allclose(items["ghost"].getData()[1], _mean(runs[0].samples)[:, 0])
    view.set_mode("spread")
    assert items["ghost_band"].isVisible() and "previous ± 1 std" in _labels(view.plots.legend)
    # a third result: the ghost is now the second one
    view.set_mode("all")
    state.set_results(runs[2])
    assert np.allclose(items["ghost"].getData()[1], _mean(runs[1].samples)[:, 0])
    # another system's results: nothing to compare with
    field = make_system("kolmogorov", resolution=32, size=16)
    state.system = field
    state.systemChanged.emit()
    flow = rng.standard_normal((3, 2, 16, 16)).astype(np.float32)
    state.set_results(Results(samples=flow[None] + 0.1, observation=synthesize(flow, np.ones(flow.shape, bool), 0.1),
                              truth=flow, settings={}))
    state.set_results(Results(samples=flow[None] - 0.1, observation=synthesize(flow, np.ones(flow.shape, bool), 0.1),
                              truth=flow, settings={}))
    assert view.ghost is None and not view.previous_check.isEnabled()


def test_big_systems_get_no_auto_run(window, qtbot):
    from sda_gui.app.live_run import LIVE_MAX_NUMBERS, live_allowed
    from sda_gui.core.systems import make_system

    assert live_allowed((3,), 65)[0] and live_allowed((40,), 64)[0]
    assert not live_allowed((2, 64, 64), 3)[0] and LIVE_MAX_NUMBERS < 2 * 64 * 64
    panel = window.assimilation_panel
    panel.auto_check.setChecked(True)
    st = window.state
    small = (st.truth, st.system)
    flow = np.zeros((4, 2, 64, 64), np.float32)
    st.set_truth(flow, system=make_system("kolmogorov", size=64, resolution=128), source="test")
    assert not panel.auto_check.isEnabled() and not panel.auto_check.isChecked()
    assert "small systems" in panel.auto_check.toolTip()
    panel.corrections_spin.setValue(2)
    assert not panel.live.pending
    st.set_truth(small[0], system=small[1], source="test")
    assert panel.auto_check.isEnabled() and not panel.auto_check.isChecked()


@pytest.mark.parametrize("name,shape,length", [("lorenz63", (3,), 200), ("lorenz96", (40,), 100)])
def test_the_limit_admits_the_usual_small_cases(name, shape, length):
    from sda_gui.app.live_run import live_allowed

    assert live_allowed(shape, length)[0], name
