"""Auto-run: the assimilation reruns by itself when a sampler setting or the drawn pattern changes.

For teaching: change C, γ, τ, the steps, the samples, the seed or the guidance, or paint
the observation pattern, and the posterior follows, with the previous result left as a
ghost in the results view to compare with.

Debounce. Every change restarts one single-shot timer (``delay_ms``, 500 ms by default):
a burst of spin-box clicks or a whole brush stroke makes one run, started when the
changes pause. A stroke still held down (mouse button not released) postpones the run.

One job at a time. When the timer fires while a job runs, the job is cancelled through
the panel's own ``cancel`` (the sampler stops within a step) and the rerun waits for
the panel's ``runEnded`` before it starts, with the settings of that moment. A run
started any other way (the Assimilate button, a lesson) already carries every change
made before it, so it drops a pending rerun. A setup that cannot run (no observations,
no model) starts nothing: the panel shows its usual one-line reason.

Only small systems. A rerun is only worth it when it is back within seconds, and the
sampler's cost grows with the numbers it denoises: one trajectory of the system
(states × numbers per state) must hold at most ``LIVE_MAX_NUMBERS``. Lorenz-63 (65 × 3
numbers) and Lorenz-96 (64 × 40) pass: at their default settings and the shipped models
a run took 1.8 s and 11 s on one CPU thread of a busy 2-core machine; a Kolmogorov flow
(2 × 64² = 8192 numbers in each state, about a minute per CPU run) does not, nor does a
trajectory too long to redo on every click. A new system or truth is not a change of a knob: it drops a pending rerun.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QCheckBox

__all__ = ["LiveRun", "live_allowed", "LIVE_MAX_NUMBERS", "LIVE_DELAY_MS"]

#: numbers of one trajectory (states × numbers per state) up to which auto-run is offered
LIVE_MAX_NUMBERS = 4096
#: pause after the last change before the rerun starts
LIVE_DELAY_MS = 500

ON_TIP = ("Rerun the assimilation by itself half a second after C, γ, τ, the steps, the samples, the seed, "
          "the guidance or the observation pattern change; a run still going is cancelled first")


def live_allowed(state_shape, length: int) -> tuple[bool, str]:
    """Whether auto-run is offered for trajectories of ``length`` states of ``state_shape``, and why not."""
    numbers = int(length) * int(np.prod(state_shape))
    if numbers <= LIVE_MAX_NUMBERS:
        return True, ON_TIP
    return False, (f"Auto-run is for small systems: one trajectory here holds {numbers:,} numbers "
                   f"(at most {LIVE_MAX_NUMBERS:,}), too slow to redo on every change")


class LiveRun(QObject):
    """Reruns ``panel.assimilate()`` after changes while ``check`` is ticked (see the module's docstring).

    ``launches`` counts the runs it asked for; ``quiet_tab`` is True while it starts one
    that only pattern edits asked for (the window then leaves the editor in front).
    """

    #: a rerun was asked of the panel (True: it started)
    launched = Signal(bool)

    def __init__(self, panel, check: QCheckBox, delay_ms: int = LIVE_DELAY_MS,
                 stroke_open: Optional[Callable[[], bool]] = None):
        super().__init__(panel)
        self.panel = panel
        self.state = panel.state
        self.check = check
        self.launches = 0
        self.quiet_tab = False
        self._wanted = False       # a rerun waits for the running job to end
        self._stopped = False      # the window shuts down: nothing starts any more
        self._reasons: set = set()  # what changed since the last run: "settings", "pattern"
        # the mask editor's open stroke (mouse still down): its edits are one change, made at the release
        self._stroke_open = stroke_open or (lambda: self.state.editor.in_stroke)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(int(delay_ms))
        self.timer.timeout.connect(self.fire)

        form = panel.form
        for spin in (form.steps_spin, form.corrections_spin, form.final_spin, form.dynamics_spin, form.refine_spin,
                     form.tau_spin, form.gamma_spin, form.samples_spin, form.seed_spin):
            spin.valueChanged.connect(lambda _=None: self.changed("settings"))
        form.guidance_combo.currentIndexChanged.connect(lambda _=None: self.changed("settings"))
        self.state.patternChanged.connect(lambda: self.changed("pattern"))
        # after the panel's own handlers: the defaults a new system brings are not the user's changes
        self.state.systemChanged.connect(self.refresh_allowed)
        self.state.truthChanged.connect(self.refresh_allowed)
        panel.runStarted.connect(self._run_started)
        panel.runEnded.connect(self._run_ended)
        check.toggled.connect(self._toggled)
        self.refresh_allowed()

    # public -----------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.check.isEnabled() and self.check.isChecked()

    @property
    def delay_ms(self) -> int:
        return self.timer.interval()

    @delay_ms.setter
    def delay_ms(self, ms: int):
        self.timer.setInterval(int(ms))

    @property
    def pending(self) -> bool:
        """A rerun is scheduled or waits for the running job to end."""
        return self.timer.isActive() or self._wanted

    def changed(self, reason: str = "settings"):
        """Something the run depends on changed: (re)start the debounce timer."""
        if not self.active:
            return
        self._reasons.add(reason)
        self.timer.start()

    def flush(self):
        """Fires a scheduled rerun now instead of after the delay (scripts, tests)."""
        if self.timer.isActive():
            self.timer.stop()
            self.fire()

    def stop(self):
        """For good (the window closes): a pending rerun is dropped and none starts after the shutdown."""
        self._stopped = True
        self.timer.stop()
        self._wanted = False

    def refresh_allowed(self):
        """Offers auto-run for a small system only; a new system or truth drops a pending rerun."""
        self.timer.stop()
        self._reasons.clear()
        ok, tip = live_allowed(self.state.state_shape, self.state.length)
        if not ok:
            self.check.setChecked(False)
        self.check.setEnabled(ok)
        self.check.setToolTip(tip)

    # the run ----------------------------------------------------------------------------
    def fire(self):
        if not self.active or self._stopped:
            return
        if self._stroke_open():
            self.timer.start()   # the stroke goes on: its release is the change
            return
        if self.panel.runner.running:
            # the running job answers to the old settings: stop it, start again once it has ended
            self._wanted = True
            self.panel.cancel()
            return
        self._launch()

    def _launch(self):
        self.launches += 1
        self.quiet_tab = self._reasons == {"pattern"}
        self._reasons.clear()
        try:
            ok = self.panel.assimilate()
        finally:
            self.quiet_tab = False
        self.launched.emit(bool(ok))

    def _run_started(self):
        # whatever started it, this run has the settings of now
        self.timer.stop()
        self._wanted = False
        self._reasons.clear()

    def _run_ended(self, how: str):
        if self._wanted:
            # on the next turn of the event loop: the panel and the window finish with this run first
            QTimer.singleShot(0, self, self._restart)

    def _restart(self):
        if not self._wanted or self.panel.runner.running:
            return
        self._wanted = False
        if self.active and not self._stopped:
            self._launch()

    def _toggled(self, on: bool):
        if not on:
            self.timer.stop()
            self._wanted = False
            self._reasons.clear()
