"""What a command says while it runs: progress and notes on stderr, the result line on stdout.

One style for every command::

    simulate: 640/1280 states (50%), 3.1 s elapsed, about 3.1 s left
    train: 2000/20000 steps (10%), 41 s elapsed, about 6 min left - loss 0.2113 val 0.2207

A progress line is printed at the first update, then at most every 2 seconds
(``-v``: every update, at most ten a second) and at the last; ``-q`` prints none.
The result line — what was written where — goes to stdout so that scripts can
read it; errors are printed by ``cli.main``.
"""

from __future__ import annotations

import sys
import time
from typing import Optional

__all__ = ["Reporter", "Progress", "format_seconds"]


def format_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Throttled ``done/total`` lines for one phase of a command."""

    def __init__(self, reporter: "Reporter", label: str, unit: str, total: Optional[int] = None):
        self.reporter, self.label, self.unit, self.total = reporter, label, unit, total
        self.t0 = time.perf_counter()
        self.last = -1.0
        # the rate is measured from the first update on, so set-up time does not skew the estimate
        self.first_done: Optional[int] = None
        self.t0_done = self.t0

    def __call__(self, done: int, total: Optional[int] = None, note: str = "") -> None:
        total = self.total if total is None else total
        if self.reporter.quiet:
            return
        now = time.perf_counter()
        if self.first_done is None:
            self.first_done, self.t0_done = done, now
        final = total is not None and done >= total
        gap = 0.1 if self.reporter.verbose else 2.0
        if not final and self.last >= 0 and now - self.last < gap:
            return
        self.last = now
        elapsed = now - self.t0
        text = f"{self.label}: {done}"
        if total:
            text += f"/{total} {self.unit} ({100 * done / total:.0f}%)"
        else:
            text += f" {self.unit}"
        text += f", {format_seconds(elapsed)} elapsed"
        rate_span, rate_done = now - self.t0_done, done - self.first_done
        if total and not final and rate_done > 0 and rate_span > 0:
            text += f", about {format_seconds((total - done) * rate_span / rate_done)} left"
        if note:
            text += f" - {note}"
        self.reporter.info(text)


class Reporter:
    """``-q``: nothing on stderr but errors; ``-v``: every progress update and the settings used."""

    def __init__(self, verbose: bool = False, quiet: bool = False, err=None, out=None):
        self.verbose, self.quiet = bool(verbose), bool(quiet)
        self._err, self._out = err, out

    @property
    def err(self):
        return self._err or sys.stderr

    @property
    def out(self):
        return self._out or sys.stdout

    def info(self, text: str) -> None:
        if not self.quiet:
            print(text, file=self.err, flush=True)

    def detail(self, text: str) -> None:
        if self.verbose:
            print(text, file=self.err, flush=True)

    def result(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def progress(self, label: str, unit: str, total: Optional[int] = None) -> Progress:
        return Progress(self, label, unit, total)
