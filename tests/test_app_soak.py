"""Soak: thousands of animation frames through real pyqtgraph items and Qt signals.

PySide6 6.12.0 on Python 3.11 crashes after a few thousand signal emissions that pass
``None`` around (a reference-count bug); this drives the same paths — timer-style
ticks, ``frameChanged`` emissions, ``setData`` on curves and scatter items, slider
updates, repaints — ten thousand times.

Nothing here is timed: the tests count frames and check where playback stands, and
wait for the timer with a generous limit, so a busy machine only makes them slower.
How fast the frames go is measured by ``sda_gui.app.bench`` (``bench_animation``,
``bench_timer_playback``).
"""

from sda_gui.app.bench import make_results_view as make_view

#: waits on the event loop end long before this unless something is broken
WAIT_MS = 120_000


def test_ten_thousand_frames(qtbot):
    from PySide6.QtWidgets import QApplication

    view = make_view("lorenz96", n_samples=8, length=64, size=(900, 600))
    qtbot.addWidget(view)
    seen = []
    view.frameShown.connect(seen.append)
    controller = view.controller
    before = controller.frames_shown
    widget = view.plot_widget()
    for i in range(10_000):
        controller.advance()
        if i % 100 == 0:
            widget.repaint()
            QApplication.processEvents()
    assert controller.frames_shown - before == 10_000
    assert len(seen) == 10_000 and seen[-1] == view.frame == (seen[0] + 9_999) % 64
    # every frame in order, wrapping at the end of the trajectory
    assert all((b - a) % 64 == 1 for a, b in zip(seen, seen[1:]))
    assert view.slider.value() == view.frame
    # modes switch cleanly in the middle of playback too
    for mode in ("one", "spread", "all"):
        view.set_mode(mode, sample=2)
        for _ in range(200):
            controller.advance()
    assert len(seen) == 10_600 and view.frame == (seen[0] + 10_599) % 64


def test_timer_driven_playback(qtbot):
    view = make_view("lorenz63", n_samples=4, length=32, size=(800, 500))
    qtbot.addWidget(view)
    view.set_speed(240)
    view.set_loop(True)
    start = view.controller.frames_shown
    view.play()
    assert view.controller.playing
    # the timer delivers frames however slowly the machine runs; more than a lap proves it loops
    qtbot.waitUntil(lambda: view.controller.frames_shown - start > 40, timeout=WAIT_MS)
    view.pause()
    assert not view.controller.playing
    paused_at = view.controller.frames_shown
    qtbot.wait(50)
    assert view.controller.frames_shown == paused_at     # a paused view does not move
    view.set_loop(False)
    view.set_frame(30)
    view.play()
    # without looping, playback stops by itself on the last frame
    qtbot.waitUntil(lambda: not view.controller.playing, timeout=WAIT_MS)
    assert view.frame == 31 and view.slider.value() == 31


def test_many_none_payloads_through_signals(qtbot):
    """Slots return None and payloads may be None: the 6.12 bug decref'd None once too often."""
    from sda_gui.app.workers import JobRunner

    runner = JobRunner()
    got = []
    runner.progress.connect(got.append)
    for _ in range(20_000):
        runner.progress.emit(None)
    assert len(got) == 20_000 and got[-1] is None
