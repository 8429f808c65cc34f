"""SIGINT / SIGTERM for one command-line run: stop soon, keep what was finished.

:func:`handle_signals` installs one handler for both signals for the duration of a
command and yields a :class:`StopSignal`:

* the first signal raises ``KeyboardInterrupt`` in the main thread (every long loop
  already turns that into "report what was finished so far") and marks the
  :class:`StopSignal` as requested; a :class:`~paramverify.options.Deadline` built
  with it then counts as expired, so a loop that swallowed the exception (an engine
  returning its interrupted bracket) still stops at its next deadline check;
* a helper thread woken by the C-level signal handler (``signal.set_wakeup_fd``)
  runs the registered cancel callbacks (e.g. ``z3.Context.interrupt``) while the main
  thread is still inside a long native call, where Python signal handlers cannot run;
* further signals never raise: they cannot interrupt the reporting of the partial
  result.  Inside :meth:`StopSignal.shield` (writing the final output) even the
  first signal only records itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Whether (and which) stop signal arrived during this run; see the module docstring."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.count = 0
        self._shield = 0
        self._raised = False
        self.interrupted_work = False  # a signal arrived outside a shield (the work was cut short)
        self._lock = threading.RLock()  # the handler may run while the main thread holds it
        self._cancel: dict[int, Callable[[], None]] = {}
        self._next = 0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGINT) -> None:
        """Mark the run as stopped (without raising) and run the cancel callbacks."""
        with self._lock:
            if self.signum is None:
                self.signum = signum
            callbacks = list(self._cancel.values())
        for cb in callbacks:
            with contextlib.suppress(Exception):  # a cancel hook must never break the stop itself
                cb()

    @contextlib.contextmanager
    def on_stop(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run ``callback`` (from another thread) if a stop arrives while the block runs."""
        with self._lock:
            key = self._next
            self._next += 1
            self._cancel[key] = callback
            already = self.signum is not None
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._cancel.pop(key, None)

    @contextlib.contextmanager
    def shield(self) -> Iterator[None]:
        """Signals inside this block are recorded but raise nothing (the final output is written here)."""
        self._shield += 1
        try:
            yield
        finally:
            self._shield -= 1

    def hold(self) -> None:
        """From now on signals are only recorded (the run is writing its final output)."""
        self._shield += 1

    def _handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        self.request(signum)
        if not self._shield:
            self.interrupted_work = True
        if not self._raised and not self._shield:
            self._raised = True
            raise KeyboardInterrupt


@contextlib.contextmanager
def handle_signals(stop: StopSignal | None = None) -> Iterator[StopSignal]:
    """Install the run's SIGINT/SIGTERM handling (main thread only; elsewhere a no-op)."""
    stop = stop or StopSignal()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}
    pipe = _wakeup_pipe()
    watcher = None
    if pipe is not None:
        watcher = threading.Thread(target=_watch, args=(pipe[0], stop), name="paramverify-signals", daemon=True)
        watcher.start()
    try:
        for s in SIGNALS:
            signal.signal(s, stop._handler)
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        if pipe is not None and watcher is not None:
            r, w, old_fd = pipe
            signal.set_wakeup_fd(old_fd)
            os.close(w)  # the watcher reads EOF and ends
            watcher.join(timeout=1.0)
            with contextlib.suppress(OSError):
                os.close(r)


def _wakeup_pipe() -> tuple[int, int, int] | None:
    """(read end, write end, previous wakeup fd), or None where the platform lacks it (then
    only the Python-level handler runs: native calls finish before the stop is seen)."""
    try:
        r, w = os.pipe()
    except OSError:
        return None
    try:
        os.set_blocking(w, False)
        return r, w, signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except (OSError, ValueError, AttributeError):
        os.close(r)
        os.close(w)
        return None


def ignore_further_signals() -> None:
    """After a stopped run has reported: SIGINT/SIGTERM are ignored until the process exits
    (only where a stop signal already arrived; main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for s in SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def _watch(fd: int, stop: StopSignal) -> None:
    """Helper thread: a byte on the wakeup pipe means a signal arrived; cancel native calls."""
    while True:
        try:
            data = os.read(fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in SIGNALS:
                stop.request(signum)


def shielded(args: Any) -> contextlib.AbstractContextManager[None]:
    """``args.stop.shield()`` for a command's namespace (a no-op without a :class:`StopSignal`)."""
    stop = getattr(args, "stop", None)
    return stop.shield() if isinstance(stop, StopSignal) else contextlib.nullcontext()


def finishing(args: Any) -> None:
    """The command has finished its work (or kept what it finished): from here on, until it
    returns, signals raise nothing, so a second signal cannot lose the output."""
    stop = getattr(args, "stop", None)
    if isinstance(stop, StopSignal):
        stop.hold()


class KeepFinished:
    """``with KeepFinished() as cut:``: a KeyboardInterrupt (Ctrl-C, or SIGTERM under
    :func:`handle_signals`) ends the block quietly and sets ``cut.interrupted``; what the
    block finished before it is kept by the caller."""

    def __init__(self) -> None:
        self.interrupted = False

    def __enter__(self) -> KeepFinished:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.interrupted = True
            return True
        return False
