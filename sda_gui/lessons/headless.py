"""A lesson run without the app: its scenario and step actions on the core, its checks measured.

The same recipe the app's lesson runner follows, through the core directly:
the truth is ``system.simulate(1, length, seed)[0]``; the pattern is
``rules.pattern_mask`` on the operator's grid; the values are drawn for every entry
by ``synthesize(truth, all, σ_y, obs_seed, operator)`` (what the editor's *Generate
from truth* draws) and the pattern picks the observed ones; SDA runs through
``run_method("sda", …)`` with seed 0 and the comparison through ``core.compare``.
The metrics are those the results view shows (``core.metrics``: RMSE of the
posterior mean, spread, residual std against σ_y).

``python -m sda_gui.lessons.headless [ID …]`` walks every step of the lessons,
performs each action and prints each check's measured value: the numbers behind the
claim that the built-in lessons pass on the shipped models.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional

import numpy as np

from . import Lesson, builtin_lessons, find_lesson
from .schema import LessonError
from .rules import evaluate_check, pattern_mask

__all__ = ["HeadlessRun", "run_lesson", "SDA_KEYS"]

#: the lesson settings that are the SDA method's
SDA_KEYS = ("steps", "corrections", "guidance", "tau", "gamma")
#: what a lesson that names no sampler settings runs with (the app's own defaults take over in the app)
FALLBACK = {"steps": 32, "corrections": 1, "samples": 8, "guidance": "sda", "tau": 0.5, "gamma": 1e-2}


class HeadlessRun:
    """One lesson's scenario on the core; ``perform(action)`` as the app's *Do it* does."""

    def __init__(self, lesson: Lesson, device: str = "cpu", record: bool = True):
        from sda_gui.core.diffusion.checkpoint import default_model_path
        from sda_gui.core.systems import make_system

        sc = lesson.scenario
        self.lesson, self.device, self.record = lesson, device, record
        self.system = make_system(sc.system, **sc.params)
        self.truth = np.asarray(self.system.simulate(1, sc.length, seed=sc.seed)[0].numpy(), dtype=np.float32)
        self.settings = {**FALLBACK, **sc.sampler}
        self.methods, self.members = list(sc.methods), sc.members
        self.pattern = dict(sc.pattern)
        self.model_path = sc.model_path or default_model_path(sc.system, device)
        self._model = None
        self.metrics: Optional[dict] = None
        self.rows: list = []
        self.trajectory = None
        self.observation = self._observe()

    @property
    def model(self):
        if self._model is None:
            from sda_gui.core.diffusion.checkpoint import load_model_for

            self._model = load_model_for(self.system.name, self.model_path, self.device)
        return self._model

    def _observe(self):
        from sda_gui.core.observation import Observation, parse_operator, synthesize

        sc = self.lesson.scenario
        spec = self.pattern.get("operator")
        op = parse_operator(None if spec == "identity" else spec)
        grid = op.output_shape(tuple(self.system.state_shape))
        mask = pattern_mask(self.pattern, sc.length, grid)
        full = synthesize(self.truth, np.ones(mask.shape, dtype=bool), sc.obs_std, seed=sc.obs_seed, operator=op.spec)
        return Observation(mask=mask, values=np.where(mask, full.values, 0.0), std=sc.obs_std, operator=op.spec)

    def perform(self, action: dict) -> None:
        if "model" in action:
            self.model_path, self._model = action["model"], None
        for key, value in action.get("set", {}).items():
            if key == "methods":
                self.methods = list(value)
            elif key == "members":
                self.members = int(value)
            else:
                self.settings[key] = value
        if "pattern" in action:
            self.pattern = dict(action["pattern"])
            self.observation = self._observe()
        if action.get("run") == "assimilate":
            self.assimilate()
        elif action.get("run") == "compare":
            self.compare()

    def assimilate(self) -> dict:
        from sda_gui.core import metrics
        from sda_gui.core.methods import run_method

        sda = {k: self.settings[k] for k in SDA_KEYS}
        if self.record and "scrubber" in self.lesson.scenario.views:
            sda["record"] = self.lesson.scenario.record
        result = run_method("sda", self.system, self.observation, int(self.settings["samples"]), sda,
                            model=self.model, device=self.device, seed=0)
        self.trajectory = result.diagnostics.get("trajectory")
        self.metrics = metrics.summary(result.members.numpy(), self.truth, self.observation)
        return self.metrics

    def compare(self) -> list:
        from sda_gui.core.compare import compare

        sda = {k: self.settings[k] for k in SDA_KEYS}
        rows = compare(self.system, self.observation, self.truth, self.methods, self.members, {"sda": sda},
                       model=self.model if "sda" in self.methods else None, device=self.device, seed=0)
        self.rows = [{"method": r.method, "rmse": r.rmse, "spread": r.spread, "error": r.error} for r in rows]
        return self.rows


def run_lesson(lesson: Lesson, device: str = "cpu", say: Optional[Callable[[str], None]] = None) -> list:
    """Every step in turn: its action, then its check. Returns ``(step number, CheckResult)`` per check."""
    run = HeadlessRun(lesson, device)
    out = []
    for i, step in enumerate(lesson.steps, start=1):
        t0 = time.perf_counter()
        if step.action:
            run.perform(step.action)
        if step.check is not None:
            result = evaluate_check(step.check, run.metrics, run.rows)
            out.append((i, result))
            if say is not None:
                say(f"{lesson.id} step {i}: {result.mark} {result.text} ({time.perf_counter() - t0:.1f} s)")
    return out


def main(argv=None) -> int:
    """Exit 0 when every check passes, 1 when one fails, 2 on bad arguments (one line, no traceback)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sda_gui.lessons.headless",
                                     description="Run the built-in lessons without the app and print each check.")
    parser.add_argument("lessons", nargs="*", metavar="ID", help="lesson ids or numbers (default: every lesson)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        lessons = [find_lesson(a) for a in args.lessons] if args.lessons else builtin_lessons()
    except LessonError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    failed = 0
    for lesson in lessons:
        results = run_lesson(lesson, say=lambda text: print(text, flush=True))
        failed += sum(1 for _, r in results if not r.passed)
    print(f"{failed} check(s) failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
