"""Progress bars for long work (plan searches, sweeps, scenario batches), shown on stderr only.

A bar appears only when the work has run for more than :data:`DELAY_S` seconds and stderr is a terminal, so
quick commands, pipes, ``--json`` and ``--quiet`` keep their output exactly as it was. Use::

    with progress_bar("searching plans", enabled=not quiet) as tick:
        api.search(run, progress=tick)          # tick(done, total)

``tick`` may be called with any (done, total) pair; a step of a sweep can also call ``tick.advance(label)``
after ``tick.set_total(n)``. With ``enabled=False`` the callback does nothing.
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from ..io.files import stderr_ok

DELAY_S = 1.0


class Tick:
    """The callback handed to long work: ``tick(done, total)``; starts the rich bar lazily after DELAY_S."""

    def __init__(self, description: str, enabled: bool, delay_s: float = DELAY_S, console=None):
        self.description = description
        self.enabled = enabled
        self.delay_s = delay_s
        self.t0 = time.perf_counter()
        self.done = 0.0
        self.total: float | None = None
        self.label = ""
        self._console = console
        self._progress = None
        self._task = None
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        if enabled:
            # work that never reports (or reports rarely) still gets a bar (a spinner) after the delay
            self._timer = threading.Timer(delay_s, self._start)
            self._timer.daemon = True
            self._timer.start()

    def _start(self) -> None:
        with self._lock:
            if self._progress is not None or not self.enabled:
                return
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                                       TimeElapsedColumn)

            console = self._console or Console(stderr=True)
            if not console.is_terminal:
                self.enabled = False
                return
            try:
                prog = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=console, transient=True)
                self._task = prog.add_task(self._text(), total=self.total, completed=self.done)
                prog.start()
            except Exception:  # noqa: BLE001 - a display problem must never stop the work
                self.enabled = False
                return
            self._progress = prog

    def _text(self) -> str:
        return f"{self.description}: {self.label}" if self.label else self.description

    def __call__(self, done: float, total: float | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        if not self.enabled:
            return
        if self._progress is None and time.perf_counter() - self.t0 >= self.delay_s:
            self._start()
        if self._progress is not None:
            try:
                self._progress.update(self._task, completed=self.done, total=self.total, description=self._text())
            except Exception:  # noqa: BLE001 - a display problem must never stop the work
                self.enabled = False

    def set_total(self, total: float) -> None:
        """Set the total amount of work."""
        self(self.done, total)

    def advance(self, label: str = "", step: float = 1.0) -> None:
        """Count ``step`` more units of work done, optionally relabelling the bar."""
        if label:
            self.label = label
        self(self.done + step)

    def sub(self, label: str = ""):
        """A callback for one inner search of a sweep: updates the label only (the sweep counts the steps)."""
        def inner(done, total):  # noqa: ARG001 - inner progress is folded into the sweep's label
            if label and label != self.label:
                self.label = label
                self(self.done)
        return inner

    def close(self) -> None:
        """Stop the display; later ticks are ignored."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            self.enabled = False
            if self._progress is not None:
                try:
                    self._progress.stop()
                except Exception:  # noqa: BLE001 - a display problem must never stop the work
                    pass
                self._progress = None


@contextmanager
def progress_bar(description: str, enabled: bool = True, delay_s: float = DELAY_S, console=None):
    """A :class:`Tick` callback whose rich bar (on stderr) appears after ``delay_s`` seconds of work."""
    tick = Tick(description, enabled and stderr_ok(console), delay_s, console)
    try:
        yield tick
    finally:
        tick.close()


class SweepBar:
    """The sweep's live bar on stderr (rich): points done of the total, rate, time left and errors so far."""

    def __init__(self, total: int, done: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self._p = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
                           TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"),
                           TimeRemainingColumn(), TextColumn("{task.fields[errors]}"),
                           console=Console(stderr=True), transient=False)
        self._p.start()
        self._task = self._p.add_task("sweep", total=total, completed=done, rate="", errors="")

    def update(self, points: int, evaluated: int, errors: int, seconds: float) -> None:
        """``points`` more done; ``evaluated`` of them in ``seconds`` so far, ``errors`` failed."""
        rate = evaluated / max(seconds, 1e-9)
        self._p.update(self._task, advance=points, rate=f"{rate:,.1f}/s",
                       errors=f"[red]{errors} errors[/red]" if errors else "")

    def stop(self) -> None:
        """Leave the bar as it stands."""
        self._p.stop()


def sweep_bar(total: int, done: int) -> SweepBar:
    """The ``progress`` display :func:`trainsim.sweep.runner.run_sweep` takes (rich is imported only here)."""
    return SweepBar(total, done)


def as_tick(progress) -> Tick:
    """``progress`` as a :class:`Tick`: None -> one that does nothing; a plain ``f(done, total)`` is wrapped."""
    if isinstance(progress, Tick):
        return progress
    t = Tick("", False)
    if progress is not None:
        return _Wrapped(progress)
    return t


class _Wrapped(Tick):
    """A Tick that forwards (done, total) to a plain callable."""

    def __init__(self, fn):
        super().__init__("", False)
        self._fn = fn

    def __call__(self, done, total=None):
        super().__call__(done, total)
        self._fn(self.done, self.total)
