"""The engine, i.e. torch and ``sda_gui.core``, loaded on a background thread.

``import torch`` alone takes over two seconds of CPU; the window, the observation editor
and the default scenario need none of it (see ``scenario``). ``python main.py`` therefore
shows the window first and then calls ``ENGINE.start()``: a daemon thread imports the
engine's modules and runs the tasks queued with ``start(tasks=…)`` (e.g. re-simulating
the default truth), after which ``on_ready`` callbacks run on that thread (the window
turns them into a queued Qt signal) and the thread goes on importing what only a
finished run needs (``WARM_UP_MODULES``).

Code that needs the engine calls ``ENGINE.wait()`` (or ``AppState.ensure_engine``)
before importing from ``sda_gui.core``: it returns at once when the engine is loaded,
waits for the thread while it loads, and imports on the calling thread when nothing has
started it (tests, scripts and ``--screenshot`` build the window that way). Waiting
rather than importing concurrently keeps two threads from importing the same modules
at once.

Python imports hold the interpreter lock, so the thread competes with the UI thread for
one core's worth of Python: it is started *after* the window is painted, never before.
"""

from __future__ import annotations

import importlib
import sys
import threading
import traceback
from typing import Callable, Optional

__all__ = ["ENGINE", "ENGINE_MODULES", "WARM_UP_MODULES", "Engine"]

#: what the app uses of the engine, in import order (torch first: everything needs it)
ENGINE_MODULES = ("torch", "sda_gui.core.systems", "sda_gui.core.observation", "sda_gui.core.diffusion.checkpoint",
                  "sda_gui.core.assimilation", "sda_gui.core.diffusion.training")
#: imported by the same thread once the engine is ready: what a finished run needs (scipy
#: comes with the metrics), so that the worker does not import it in the middle of a run
WARM_UP_MODULES = ("sda_gui.core.metrics",)


class Engine:
    """Loads ``modules`` once, on a background thread (``start``) or on the caller's (``wait``)."""

    def __init__(self, modules=ENGINE_MODULES, warm_up=WARM_UP_MODULES):
        self.modules = tuple(modules)
        self.warm_up = tuple(warm_up)
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._tasks: list[Callable[[], None]] = []
        self._callbacks: list[Callable[[], None]] = []
        self.error: Optional[BaseException] = None

    @property
    def started(self) -> bool:
        return self._thread is not None or self._done.is_set()

    def ready(self) -> bool:
        """True once the engine's modules are imported (here or by anyone else)."""
        if self._done.is_set():
            return True
        if self._thread is not None:  # modules half imported by the thread are in sys.modules too
            return False
        return all(m in sys.modules for m in self.modules)

    def start(self, tasks=()) -> bool:
        """Imports on a daemon thread, then runs ``tasks`` there; False when already started."""
        with self._lock:
            if self.started:
                return False
            self._tasks.extend(tasks)
            # imported here, not in the thread: a daemon thread importing it at interpreter
            # exit fails ("can't register atexit after shutdown"), and torch imports it
            import concurrent.futures.thread  # noqa: F401

            self._thread = threading.Thread(target=self._load, args=(True,), name="sda-engine", daemon=True)
            self._thread.start()
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the engine is loaded; loads it on this thread when nothing started it."""
        if self._done.is_set():
            return True
        with self._lock:
            own = not self.started
            if own:
                self._thread = threading.current_thread()
        if own:
            self._load(background=False)
            return True
        return self._done.wait(timeout)

    def on_ready(self, callback: Callable[[], None]):
        """Calls ``callback()`` once the engine is loaded: now if it is, else on the loading thread."""
        with self._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback()

    def _load(self, background: bool):
        """Imports, runs the tasks, reports ready; the warm-up comes after that in the background,
        before it when the caller waits anyway."""
        modules = self.modules if background else self.modules + self.warm_up
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # noqa: BLE001 - reported where the engine is used
            self.error = exc
            traceback.print_exc()
        for task in self._tasks:
            try:
                task()
            except Exception:  # noqa: BLE001 - a failed extra (e.g. a check) must not block the app
                traceback.print_exc()
        with self._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except RuntimeError:  # e.g. its window was closed meanwhile (a deleted Qt object)
                pass
        if background:
            for name in self.warm_up:
                try:
                    importlib.import_module(name)
                except ImportError:
                    pass


#: the app's engine
ENGINE = Engine()
