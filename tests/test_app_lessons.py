"""The classroom in the app: the lesson dock, the runner on a real window, the scrubber, presenter mode."""

import math

import numpy as np
import pytest
import torch

from sda_gui.lessons import builtin_lessons, find_lesson, parse_lesson

LESSON = '''id = "fake"
title = "A fake lesson"
summary = "For the dock."
introduction = "Read **this** aloud."

[scenario]
system = "lorenz63"

[[steps]]
title = "One"
text = "First step."
action = "assimilate"
question = "Why?"
answer = "Because."
check = { residual_within = 0.2 }

[[steps]]
text = "Second step."
check = { method_beats = ["sda", "enkf"] }
'''


class FakeHost:
    def __init__(self):
        self.scenarios, self.actions = [], []
        self.metrics, self.rows = None, []

    def apply_scenario(self, scenario):
        self.scenarios.append(scenario)

    def perform(self, action):
        self.actions.append(action)

    def last_metrics(self):
        return self.metrics

    def last_comparison_rows(self):
        return self.rows


@pytest.fixture
def dock(qtbot):
    from sda_gui.app.lesson_dock import LessonDock

    host = FakeHost()
    d = LessonDock(host)
    qtbot.addWidget(d)
    d.set_lesson(parse_lesson(LESSON, "fake.toml"))
    return d, host


def test_dock_steps_back_and_forth_and_performs_actions(dock):
    d, host = dock
    assert len(host.scenarios) == 1 and host.scenarios[0].system == "lorenz63"
    assert d.page == 0 and "Introduction" in d.counter.text() and "aloud" in d.text.toPlainText()
    assert not d.back_button.isEnabled() and not d.do_button.isEnabled()
    d.next()
    assert d.page == 1 and d.counter.text() == "Step 1 of 2 — One" and "First step." in d.text.toPlainText()
    d.do_button.click()
    assert host.actions == [{"run": "assimilate"}]
    d.next()
    assert d.page == 2 and not d.next_button.isEnabled() and not d.do_button.isEnabled()
    d.next()
    assert d.page == 2
    d.back()
    d.back()
    assert d.page == 0


def test_dock_reveals_answers_on_demand(dock):
    d, _ = dock
    d.next()
    assert not d.answer_shown and d.answer_button.isEnabled()
    d.answer_button.click()
    assert d.answer_shown and "Because." in d.answer.text() and d.answer_button.text() == "Hide answer"
    d.next()
    d.back()
    assert not d.answer_shown   # a new page hides it again


def test_dock_evaluates_checks_against_the_hosts_results(dock):
    d, host = dock
    d.next()
    assert d.last_check.passed is None and "run the assimilation first" in d.check_label.text()
    host.metrics = {"residual_std": 1.1, "obs_std": 1.0, "rmse": 0.5, "spread": 0.5}
    result = d.refresh_check()
    assert result.passed and "✓" in d.check_label.text() and "1.10 σ_y" in d.check_label.text()
    host.metrics = {"residual_std": 0.5, "obs_std": 1.0}
    assert d.refresh_check().passed is False and "✗" in d.check_label.text()
    d.next()
    host.rows = [{"method": "sda", "rmse": 0.4}, {"method": "enkf", "rmse": 0.6}]
    assert d.refresh_check().passed


def test_browser_lists_the_lessons_and_opens_files(qtbot, tmp_path):
    from sda_gui.app.lesson_dock import LessonBrowser

    browser = LessonBrowser()
    qtbot.addWidget(browser)
    assert browser.list.count() == 8
    browser.list.setCurrentRow(1)
    assert browser.open_selected().id == "noise-to-trajectory"
    bad = tmp_path / "bad.toml"
    bad.write_text(LESSON.replace('action = "assimilate"', 'action = "jump"'), encoding="utf-8")
    browser = LessonBrowser()
    qtbot.addWidget(browser)
    assert browser.open_file(str(bad)) is None
    assert browser.error.text().startswith("bad.toml, line 12: steps[0].action: unknown action 'jump'")
    good = tmp_path / "good.toml"
    good.write_text(LESSON, encoding="utf-8")
    assert browser.open_file(str(good)).id == "fake"


def _trajectory(frames=5, recorded=2, shape=(16, 3)):
    from sda_gui.core.diffusion.sampler import Trajectory

    g = torch.Generator().manual_seed(0)
    x = torch.randn((frames, recorded, *shape), generator=g)
    return Trajectory(times=torch.linspace(1, 0, frames), x=x, x_hat=x * 0.5, indices=tuple(range(recorded)),
                      steps=tuple(range(frames)))


@pytest.mark.parametrize("shape, kind", [((16, 3), "curves"), ((16, 40), "hovmoller"), ((4, 2, 8, 8), "field")])
def test_scrubber_shows_a_recording_and_its_slider_runs_from_noise_to_sample(qtbot, shape, kind):
    from sda_gui.app.scrubber import ScrubberWidget

    w = ScrubberWidget()
    qtbot.addWidget(w)
    traj = _trajectory(shape=shape)
    w.set_trajectory(traj, truth=np.zeros(shape, dtype=np.float32))
    assert w.kind == kind and w.n_frames == 5 and w.frame == 0 and w.current_time == pytest.approx(1.0)
    assert "t = 1.000 (step 0 of 4)" == w.time_label.text()
    shown = []
    w.frameShown.connect(shown.append)
    w.slider.setValue(4)
    assert w.current_time == pytest.approx(0.0) and shown[-1] == 4
    w.animation.set_frame(0)
    for _ in range(10):            # playback ticks: it stops at t = 0, no loop
        w.animation.advance()
    assert w.frame == 4 and not w.animation.playing
    if kind == "curves":
        curve = w._items["x"][0][1]
        assert np.allclose(curve.yData, traj.x[4, 1, :, 0].numpy())
    else:
        assert w._items["x"].image.shape[0] > 1
    w.set_trajectory(None)
    assert w.n_frames == 0 and not w.play_button.isEnabled()


def test_scrubber_exports_a_gif(qtbot, tmp_path):
    from sda_gui.app.scrubber import ScrubberWidget

    w = ScrubberWidget()
    qtbot.addWidget(w)
    w.resize(600, 300)
    w.set_trajectory(_trajectory(shape=(16, 40)))
    assert w.export(str(tmp_path / "d.gif")) == 5 and (tmp_path / "d.gif").stat().st_size > 0
    assert w.frame == 0


def test_presenter_mode_scales_fonts_and_lines_and_back(qtbot):
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication, QMainWindow

    from sda_gui.app.lesson_dock import LessonDock
    from sda_gui.app.presenter import is_presenter, set_presenter_mode

    win = QMainWindow()
    qtbot.addWidget(win)
    plot = pg.PlotWidget()
    curve = plot.plot([0, 1, 2], pen=pg.mkPen("k", width=2))
    win.setCentralWidget(plot)
    win.lesson_dock = LessonDock(FakeHost(), win)
    win.show()
    app = QApplication.instance()
    before = app.font().pointSizeF()
    set_presenter_mode(win, True)
    assert is_presenter(win) and app.font().pointSizeF() == pytest.approx(before * 1.6)
    assert curve.opts["pen"].widthF() == pytest.approx(4.0)
    assert win.lesson_dock._scale == pytest.approx(1.6)
    axis = plot.getPlotItem().getAxis("bottom")
    assert axis.style["tickFont"] is not None and axis.style["tickFont"].pointSizeF() == pytest.approx(before * 1.6)
    set_presenter_mode(win, False)
    assert not is_presenter(win) and app.font().pointSizeF() == pytest.approx(before)
    assert curve.opts["pen"].widthF() == pytest.approx(2.0) and axis.style["tickFont"] is None
    assert win.lesson_dock._scale == 1.0 and not win.isFullScreen()


def test_runner_sets_a_lesson_up_and_its_check_passes(qtbot, lesson_window, one_torch_thread):
    w, runner, dock = lesson_window
    lesson = find_lesson("markov-blanket")
    with qtbot.waitSignal(runner.ready, timeout=120_000):
        dock.set_lesson(lesson)
    state = w.state
    assert state.system.name == "lorenz63" and state.truth.shape == (64, 3)
    assert state.mask.sum() == 11 * 3 and state.mask[::6].all()
    assert state.obs_std == 1.0 and state.model_path.endswith("lorenz63_k3.pt")
    assert w.tabs.currentWidget() is w.grid_editor
    # the first step, made cheap: fewer samples and steps than the lesson's
    runner.perform({"set": {"samples": 4, "steps": 16}})
    dock.next()
    with qtbot.waitSignal(w.assimilation_panel.runEnded, timeout=300_000):
        dock.do_it()
    assert w.tabs.currentWidget() is w.results_view
    assert dock.last_check is not None and dock.last_check.passed, dock.check_label.text()
    assert not math.isnan(dock.last_check.value)


def test_runner_records_the_diffusion_for_the_scrubber(qtbot, lesson_window, one_torch_thread):
    w, runner, dock = lesson_window
    with qtbot.waitSignal(runner.ready, timeout=120_000):
        dock.set_lesson(find_lesson("noise-to-trajectory"))
    runner.perform({"set": {"samples": 2, "steps": 4}})
    with qtbot.waitSignal(w.assimilation_panel.runEnded, timeout=300_000):
        runner.perform({"run": "assimilate"})
    with qtbot.waitSignal(runner.record_runner.finished, timeout=300_000):
        runner.perform({"view": "scrubber"})
    scrubber = w.scrubber
    assert w.tabs.currentWidget() is scrubber and scrubber.kind == "hovmoller"
    assert scrubber.n_frames == 5 and scrubber.x.shape[1] == 2
    scrubber.slider.setValue(scrubber.n_frames - 1)
    assert scrubber.current_time == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("lesson_id", [x.id for x in builtin_lessons()])
def test_every_lesson_opens_and_renders_every_page(qtbot, lesson_window, lesson_id):
    w, runner, dock = lesson_window
    with qtbot.waitSignal(runner.ready, timeout=900_000):
        dock.set_lesson(find_lesson(lesson_id))
    for page in range(dock.n_pages):
        dock.show_page(page)
        assert dock.text.toPlainText().strip()
        assert not dock.grab().isNull()
