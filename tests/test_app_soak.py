"""Soak: thousands of animation frames through real pyqtgraph items and Qt signals.

PySide6 6.12.0 on Python 3.11 crashes after a few thousand signal emissions that pass
``None`` around (a reference-count bug); this drives the same paths — timer-style
ticks, ``frameChanged`` emissions, ``setData`` on curves and scatter items, slider
updates, repaints — ten thousand times.
"""

import time

from sda_gui.app.bench import make_results_view


def test_ten_thousand_frames(qtbot):
    from PySide6.QtWidgets import QApplication

    view = make_results_view("lorenz96", n_samples=8, length=64, size=(900, 600))
    qtbot.addWidget(view)
    seen = []
    view.frameShown.connect(seen.append)
    controller = view.controller
    before = controller.frames_shown
    widget = view.plot_widget()
    t0 = time.perf_counter()
    for i in range(10_000):
        controller.advance()
        if i % 100 == 0:
            widget.repaint()
            QApplication.processEvents()
    assert controller.frames_shown - before == 10_000
    assert len(seen) == 10_000 and seen[-1] == view.frame == (seen[0] + 9_999) % 64
    assert view.slider.value() == view.frame
    # modes switch cleanly in the middle of playback too
    for mode in ("one", "spread", "all"):
        view.set_mode(mode, sample=2)
        for _ in range(200):
            controller.advance()
    assert time.perf_counter() - t0 < 60


def test_timer_driven_playback(qtbot):
    view = make_results_view("lorenz63", n_samples=4, length=32, size=(800, 500))
    qtbot.addWidget(view)
    view.set_speed(240)
    view.set_loop(True)
    start = view.controller.frames_shown
    view.play()
    qtbot.waitUntil(lambda: view.controller.frames_shown - start > 60, timeout=5000)
    view.pause()
    view.set_loop(False)
    view.set_frame(30)
    view.play()
    qtbot.waitUntil(lambda: not view.controller.playing, timeout=2000)
    assert view.frame == 31


def test_many_none_payloads_through_signals(qtbot):
    """Slots return None and payloads may be None: the 6.12 bug decref'd None once too often."""
    from sda_gui.app.workers import JobRunner

    runner = JobRunner()
    got = []
    runner.progress.connect(got.append)
    for _ in range(20_000):
        runner.progress.emit(None)
    assert len(got) == 20_000 and got[-1] is None
