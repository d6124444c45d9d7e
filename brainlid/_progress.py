"""Progress of long steps: a rich bar or spinner on a terminal, nothing in logs.

Shown only when stderr is a terminal and ``$CI`` is not set to a true value (CI logs stay
clean); ``$BRAINLID_PROGRESS=1`` / ``0`` forces it on or off. The bar is transient: when a stage
ends it disappears and the stage's own log lines remain.
"""

from __future__ import annotations

import os
import sys
import time

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def progress_wanted(stream=None) -> bool:
    """Whether to draw progress: ``$BRAINLID_PROGRESS`` if set, else a terminal outside CI."""
    forced = os.environ.get("BRAINLID_PROGRESS", "").strip().lower()
    if forced in _TRUE:
        return True
    if forced in _FALSE:
        return False
    if os.environ.get("CI", "").strip().lower() not in ("", *_FALSE):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def console():
    """A ``rich`` console on stderr (progress bars and the one-line notes beside them)."""
    from rich.console import Console  # heavy: rich, only when something is drawn

    return Console(stderr=True)


class Stage:
    """One stage's progress on stderr: a bar when ``total`` is known, else a spinner; a no-op when disabled.

    Parameters
    ----------
    label : str
        What the stage does, shown left of the bar.
    total : int or None
        Number of steps (``advance`` calls count ``n`` each), or None for a spinner.
    enabled : bool or None
        None: :func:`progress_wanted`.
    unit : str or None
        Name of one step (e.g. ``"img"``): the bar then shows the rate, ``"12 img/s"``.
    transient : bool
        Remove the bar when the stage ends (True), or leave its last state on the terminal.

    Examples
    --------
    >>> with Stage("training", total=3, enabled=False) as st:
    ...     for name in ("a", "b", "c"):
    ...         st.advance(detail=name)
    """

    def __init__(self, label: str, total: int | None = None, enabled: bool | None = None, *,
                 unit: str | None = None, transient: bool = True):
        self.label, self.total, self.unit, self.transient = label, total, unit, transient
        self.enabled = progress_wanted() if enabled is None else bool(enabled)
        self._p = None

    def __enter__(self) -> "Stage":
        if self.enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress,  # heavy: rich, only when drawn
                                       SpinnerColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            columns = [TextColumn("{task.description}")]
            if self.total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
                if self.unit is not None:
                    columns += [TextColumn("{task.fields[rate]} " + self.unit + "/s")]
                columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
            else:
                columns = [SpinnerColumn(), *columns, TimeElapsedColumn()]
            columns += [TextColumn("{task.fields[detail]}", style="dim")]
            self._p = Progress(*columns, console=console(), transient=self.transient)
            self._p.start()
            self._task = self._p.add_task(self.label, total=self.total, detail="", rate="-")
            self._t0, self._done = time.perf_counter(), 0
        return self

    def advance(self, n: int = 1, detail: str | None = None) -> None:
        """Count ``n`` steps done; ``detail`` (e.g. what runs next) is shown after the bar."""
        if self._p is not None:
            self._done += n
            fields = {} if detail is None else {"detail": detail}
            if self.unit is not None:
                fields["rate"] = f"{self._done / max(1e-9, time.perf_counter() - self._t0):.0f}"
            self._p.update(self._task, advance=n, **fields)

    def __exit__(self, *exc) -> bool:
        if self._p is not None:
            self._p.stop()
            self._p = None
        return False
