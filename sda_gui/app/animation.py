"""Playback of a time axis: play, pause, step, speed, loop.

A QTimer in the UI thread ticks at the chosen frame rate; each tick emits
``frameChanged``. ``advance()`` is the tick itself, so tests and benchmarks can drive
thousands of frames without waiting for the timer.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer, Signal

__all__ = ["AnimationController"]


class AnimationController(QObject):
    frameChanged = Signal(int)
    playingChanged = Signal(bool)

    def __init__(self, parent=None, fps: float = 10.0, loop: bool = True):
        super().__init__(parent)
        self.n_frames = 0
        self.frame = 0
        self.loop = bool(loop)
        self.fps = float(fps)
        self.frames_shown = 0  # ticks delivered since creation (the soak test counts them)
        self.timer = QTimer(self)
        self.timer.setTimerType(self.timer.timerType().PreciseTimer)
        self.timer.timeout.connect(self.advance)
        self.set_speed(fps)

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def set_frame_count(self, n: int):
        self.n_frames = max(0, int(n))
        if self.frame >= self.n_frames:
            self.set_frame(max(0, self.n_frames - 1))
        if self.n_frames <= 1:
            self.pause()

    def set_frame(self, i: int):
        if self.n_frames == 0:
            return
        i = int(i) % self.n_frames if self.loop else min(max(int(i), 0), self.n_frames - 1)
        self.frame = i
        self.frames_shown += 1
        self.frameChanged.emit(i)

    def set_speed(self, fps: float):
        self.fps = max(0.1, float(fps))
        self.timer.setInterval(max(1, int(round(1000.0 / self.fps))))

    def set_loop(self, loop: bool):
        self.loop = bool(loop)

    def play(self):
        if self.n_frames > 1 and not self.timer.isActive():
            if not self.loop and self.frame >= self.n_frames - 1:
                self.set_frame(0)
            self.timer.start()
            self.playingChanged.emit(True)

    def pause(self):
        if self.timer.isActive():
            self.timer.stop()
            self.playingChanged.emit(False)

    def toggle(self):
        self.pause() if self.playing else self.play()

    def step(self, delta: int = 1):
        """One frame forward (or back); pauses, as a user stepping expects."""
        self.pause()
        if self.n_frames:
            if self.loop:
                self.set_frame((self.frame + delta) % self.n_frames)
            else:
                self.set_frame(min(max(self.frame + delta, 0), self.n_frames - 1))

    def advance(self):
        """One tick of playback: the next frame, wrapping or stopping at the end."""
        if self.n_frames == 0:
            return
        nxt = self.frame + 1
        if nxt >= self.n_frames:
            if not self.loop:
                self.pause()
                return
            nxt = 0
        self.set_frame(nxt)
