"""What one click on *Assimilate* runs on the worker thread.

The job calls the one method interface every caller uses,
``core.methods.registry.run_method("sda", system, observation, N, settings, model=…,
device=…, seed=…, progress=…, should_stop=…)``, forwards its step-wise progress and, at
most every ``interval`` seconds, the denoised estimate as a preview — together with
what the results view draws of it (``prepare``, computed here so the UI thread only
hands arrays over) — then computes the metrics of the final samples.

Previews are for what is shown: they carry at most ``PREVIEW_MAX_NUMBERS`` numbers, so
a run of many large samples previews its first few (``preview_count``) instead of
copying every estimate whole.
"""

from __future__ import annotations

import time
import traceback
from typing import Callable, Optional

import numpy as np

from .sampler_config import dynamics_apply, refine_apply
from .state import Results

__all__ = ["make_job", "preview_count", "dynamics_apply", "refine_apply", "PREVIEW_MAX_NUMBERS", "SAMPLER_KEYS"]

#: numbers of one preview (samples × states × state size): 16 M float32 = 64 MiB
PREVIEW_MAX_NUMBERS = 16 * 2**20
#: the panel's settings that are the SDA method's (the rest are the run's: samples, device, seed)
SAMPLER_KEYS = ("steps", "corrections", "final_corrections", "guidance", "tau", "gamma", "dynamics_std",
                "refine_iterations")


def preview_count(n_samples: int, length: int, state_shape) -> int:
    """How many of ``n_samples`` a preview shows: all of them unless that is too many numbers."""
    per_sample = int(length) * int(np.prod(state_shape))
    return int(max(1, min(n_samples, PREVIEW_MAX_NUMBERS // max(per_sample, 1))))


def make_job(system, model, obs, truth: Optional[np.ndarray], settings: dict, device, *, want_preview: bool,
             interval: float, prepare: Optional[Callable] = None) -> Callable:
    """``job(report, should_stop) -> (samples, metrics, prepared)`` for ``JobRunner.start``.

    ``report((step, total, None | (estimate, prepared)))`` goes to the UI thread.
    """
    n = int(settings["n_samples"])
    shown = preview_count(n, obs.length, system.state_shape)
    # a session of an older version has no final corrections: the method's default (off) then
    method_settings = {key: settings[key] for key in SAMPLER_KEYS if key in settings}

    def prepared(samples, preview=True):
        """What the results view will draw of ``samples``, computed on the worker thread."""
        if prepare is None:
            return None
        try:
            return prepare(samples, preview=preview)
        except Exception:  # noqa: BLE001 - the view then computes it itself
            traceback.print_exc()
            return None

    def job(report, should_stop):
        from sda_gui.core.methods.registry import run_method

        from .result_metrics import compute_metrics

        last = [float("-inf")]

        def progress(step, total, estimate):
            # an estimate goes to the UI only when asked for, and at most every `interval`
            now = time.perf_counter()
            if not want_preview or estimate is None or (step < total and now - last[0] < interval):
                report((step, total, None))
                return
            last[0] = now
            samples = estimate[:shown].numpy()
            report((step, total, (samples, prepared(samples))))

        from sda_gui.core.threads import apply_threads, auto_threads

        # the idle cores now: on a busy machine one thread is many times faster than two
        apply_threads(auto_threads())
        result = run_method("sda", system, obs, n, method_settings, model=model, device=device,
                            seed=int(settings["seed"]), progress=progress, should_stop=should_stop)
        samples = np.asarray(result.members.numpy(), dtype=np.float32)
        metrics = compute_metrics(Results(samples=samples, observation=obs, truth=truth, settings=dict(settings)),
                                  system=system)
        return samples, metrics, prepared(samples, preview=False), result.diagnostics

    return job
