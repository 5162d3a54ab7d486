"""Background jobs: a function runs on a QThread and talks to the UI only through signals.

A job is ``fn(report, should_stop) -> result``. ``report(payload)`` emits a progress
signal (queued to the UI thread); ``should_stop()`` reads a flag that ``cancel()``
sets, which the core functions poll between sampler/training/simulation steps, so a
cancel takes effect within one step. The UI never blocks on a job: it gets exactly one
of ``finished(result)``, ``failed(message)`` or ``cancelled()``.

Shutting down (the window closes mid-run) sets the stop flag and asks the thread's
event loop to quit at once, so the thread ends as soon as the job returns from its
current step; a job that does not stop within the timeout is left to finish on its
own (its thread is kept referenced so that Qt never destroys a running thread).
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable, Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from .common import is_out_of_memory, memory_hint, one_line

__all__ = ["Job", "JobRunner", "is_cancellation", "error_message"]

#: threads whose job did not stop within the shutdown timeout: kept alive until they end
_ORPHANS: list = []


def is_cancellation(exc: BaseException) -> bool:
    """Whether an exception means "stopped on request" rather than "went wrong"."""
    if isinstance(exc, InterruptedError):
        return True
    try:
        from sda_gui.core.assimilation import Cancelled
    except ImportError:  # the engine module may not define it (older core)
        Cancelled = None
    if Cancelled is not None and isinstance(exc, Cancelled):
        return True
    return type(exc).__name__ in ("Cancelled", "TrainingCancelled")


def error_message(exc: BaseException, device: str = "") -> str:
    """One line for the user: the exception's own message, and its type only when it is not ours.

    Running out of memory (numpy's MemoryError, torch's CPU allocator, CUDA) says what helps.
    """
    if is_out_of_memory(exc):
        where = "the GPU" if "cuda" in str(exc).lower() or str(device).startswith("cuda") else "this computer"
        return f"not enough memory on {where} for this run: {memory_hint('cuda' if where == 'the GPU' else 'cpu')}"
    text = one_line(exc) if str(exc).strip() else ""
    # our own errors (bad input, a diverged sampler, a file) speak for themselves
    if isinstance(exc, (ValueError, OSError, KeyError, ArithmeticError)) and text:
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _expected(exc: BaseException) -> bool:
    """Errors that are the input's or the machine's (their one line says it all), not bugs."""
    return is_out_of_memory(exc) or isinstance(exc, (ValueError, OSError, KeyError, ArithmeticError))


class Job(QObject):
    """Runs in the worker thread; everything it says goes out through its signals."""

    progressed = Signal(object)
    done = Signal(str, object)  # ("finished" | "failed" | "cancelled", payload)

    def __init__(self, fn: Callable, name: str = "job"):
        super().__init__()
        self.fn = fn
        self.name = name
        self.stop_flag = threading.Event()

    def should_stop(self) -> bool:
        return self.stop_flag.is_set()

    @Slot()
    def run(self):
        try:
            result = self.fn(self.progressed.emit, self.should_stop)
        except BaseException as exc:  # noqa: BLE001 - the UI must hear about every failure
            if self.stop_flag.is_set() or is_cancellation(exc):
                self.done.emit("cancelled", None)
            else:
                if not _expected(exc):
                    traceback.print_exc()   # a bug: its traceback helps whoever fixes it
                self.done.emit("failed", error_message(exc))
            return
        # a job that returns normally finished, even if asked to stop: training hands back
        # the model trained so far, which the user may still want to save
        self.done.emit("finished", result)


class JobRunner(QObject):
    """Owns at most one running job and its thread; lives in the UI thread.

    ``progress``, ``finished``, ``failed`` and ``cancelled`` are re-emitted in the UI
    thread, so views connect to them as to any widget signal.
    """

    started = Signal(str)
    progress = Signal(object)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    stateChanged = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._thread: Optional[QThread] = None
        self._job: Optional[Job] = None
        self.started_at = 0.0

    @property
    def running(self) -> bool:
        return self._job is not None

    @property
    def name(self) -> str:
        return self._job.name if self._job else ""

    def start(self, fn: Callable[[Callable[[Any], None], Callable[[], bool]], Any], name: str = "job") -> bool:
        if self._job is not None:
            return False
        thread = QThread()
        thread.setObjectName(f"sda-{name}")
        job = Job(fn, name)
        job.moveToThread(thread)
        # bound methods of an object living in the UI thread → queued connections
        job.progressed.connect(self._on_progress)
        job.done.connect(self._on_done)
        thread.started.connect(job.run)
        self._thread, self._job = thread, job
        self.started_at = time.perf_counter()
        thread.start()
        self.started.emit(name)
        self.stateChanged.emit(True)
        return True

    def cancel(self):
        if self._job is not None:
            self._job.stop_flag.set()

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Blocks until the thread ends (used at shutdown; the UI never calls it mid-session)."""
        if self._thread is None:
            return True
        return self._thread.wait(int(timeout_s * 1000))

    def request_stop(self):
        """Sets the stop flag and asks the thread's event loop to quit once the job returns.

        ``QThread.quit`` is thread-safe: the loop ends right after the running slot (the
        job) returns, instead of idling until someone quits it.
        """
        if self._job is not None:
            self._job.stop_flag.set()
        if self._thread is not None:
            self._thread.quit()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Cancels the running job and joins its thread, e.g. when the window closes.

        Returns True when the thread has ended (at once for a job that honours the stop
        within a step); False when it was still running after ``timeout_s``: it is then
        left to end by itself, and nothing it reports reaches the UI any more.
        """
        if self._job is None:
            return True
        self.request_stop()
        finished = self.wait(timeout_s)
        self._cleanup(wait=finished)
        return finished

    def _cleanup(self, wait: bool = True):
        thread, job = self._thread, self._job
        self._thread = self._job = None
        if thread is None:
            return
        try:
            job.progressed.disconnect(self._on_progress)
            job.done.disconnect(self._on_done)
        except (RuntimeError, TypeError):
            pass
        thread.quit()
        if wait or thread.wait(0):
            thread.wait()
            job.deleteLater()
            thread.deleteLater()
            return
        # still running a step that ignores the flag: keep both alive until it ends
        _ORPHANS.append((thread, job))
        thread.finished.connect(lambda: _forget_orphan(thread))

    @Slot(object)
    def _on_progress(self, payload):
        if self._job is not None and not self._job.stop_flag.is_set():
            self.progress.emit(payload)

    @Slot(str, object)
    def _on_done(self, kind: str, payload):
        if self._job is None:  # a late message from a job already shut down
            return
        self._cleanup()
        self.stateChanged.emit(False)
        if kind == "finished":
            self.finished.emit(payload)
        elif kind == "cancelled":
            self.cancelled.emit()
        else:
            self.failed.emit(str(payload))


def _forget_orphan(thread):
    for i, (t, job) in enumerate(_ORPHANS):
        if t is thread:
            del _ORPHANS[i]
            job.deleteLater()
            t.deleteLater()
            return
