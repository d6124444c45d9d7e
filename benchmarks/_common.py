"""Shared helpers for the benchmarks: interleaved timing, peak memory in a child process, tables.

Machines here swing up to 2x in speed within minutes, so every benchmark times
brainlid and its references *interleaved* in the same run (round-robin, median of
``repeats``) and reports ratios, never absolute seconds alone.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import resource
import statistics
import time
from typing import Callable


def timeit_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 3, warmup: bool = True) -> dict[str, float]:
    """Median wall time (s) of each callable, run round-robin ``repeats`` times.

    ``warmup`` runs every callable once first (untimed) so first-call costs
    (imports, JIT, page faults) do not count.
    """
    if warmup:
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _rss_child(conn, fn, args):
    import threadpoolctl  # noqa: F401  (import cost outside the measurement)

    base = current_rss()
    # ru_maxrss survives fork+exec (Linux keeps the forking parent's high-water mark in the child), so a
    # parent that once held a big array hides the child's peak: use this process's own VmHWM, reset first.
    _reset_peak_rss()
    peak_before = _peak_rss()
    try:
        fn(*args)
        peak = _peak_rss()
        conn.send(("ok", max(0, peak - max(base, peak_before)) if peak > peak_before else 0, base, peak))
    except BaseException as exc:  # report, don't hang the parent
        conn.send(("error", repr(exc), 0, 0))
    finally:
        conn.close()


def _reset_peak_rss() -> None:
    """Reset this process's peak RSS (VmHWM) to the current RSS (Linux >= 4.0; ignored elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_rss() -> int:
    """Peak RSS of this process in bytes: VmHWM from /proc (per address space), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss() -> int:
    """Resident set size of this process in bytes (Linux /proc)."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_extra_memory(fn: Callable, *args) -> dict:
    """Run ``fn(*args)`` in a fresh child process; return its peak RSS above the child's baseline.

    ``fn`` must be a module-level function (picklable); it should create its own
    inputs *before* calling the measured code only if they are meant to count.
    Returns ``{"extra_bytes", "baseline_bytes", "peak_bytes"}``.
    """
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_rss_child, args=(child, fn, args))
    proc.start()
    status, extra, base, peak = parent.recv()
    proc.join()
    if status != "ok":
        raise RuntimeError(f"benchmark child failed: {extra}")
    return {"extra_bytes": extra, "baseline_bytes": base, "peak_bytes": peak}


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def print_table(rows: list[dict], title: str | None = None) -> None:
    """Print rows (dicts with the same keys) as an aligned table, through pandas."""
    import pandas as pd

    if title:
        print(f"\n== {title} ==")
    with pd.option_context("display.max_columns", None, "display.width", 200):
        print(pd.DataFrame(rows).to_string(index=False))
