"""The one place that chooses the array backend and the threads per process.

Array backend
    brainlid builds on himalaya's backend layer (``himalaya.backend``) so that the
    ridge solvers and brainlid's own maths share one switch: ``"numpy"``,
    ``"torch"`` (CPU) or ``"torch_cuda"``. :func:`get_backend` returns the himalaya
    backend module; ``"auto"`` picks ``torch_cuda`` when a GPU is visible and
    ``numpy`` otherwise.

Threads
    :func:`set_threads` limits BLAS (through threadpoolctl), torch intra-op threads and
    brainlid's own compiled kernels (:func:`compute_threads`) in this process, so that
    parallel workers (Dask, DataLoader workers) each use their share of the cores and
    never oversubscribe the machine. :func:`thread_limits` is the same as a context manager.

Imports
    This module imports neither torch nor himalaya at load time: torch alone takes ~3 s to
    import, and commands that never touch it (``brainlid lid``, ``brainlid align``) should
    not pay for it. :func:`thread_limits` limits torch's threads only when torch is already
    loaded; :func:`set_threads` (once per worker process) imports it to set them; ``"auto"``
    imports torch to look for a GPU only when the machine has a GPU device node.
"""

from __future__ import annotations

import contextlib
import glob
import importlib
import os
import sys
from typing import Iterator

from threadpoolctl import ThreadpoolController, threadpool_limits

from .errors import InputError

__all__ = ["BACKENDS", "get_backend", "use_backend", "resolve_backend_name", "set_threads", "thread_limits",
           "available_cores", "compute_threads"]

BACKENDS = ("numpy", "torch", "torch_cuda")


def _gpu_device_present() -> bool:
    """A GPU device node exists (NVIDIA or ROCm); checked before paying ~3 s for importing torch."""
    return bool(glob.glob("/dev/nvidia[0-9]*") or os.path.exists("/dev/kfd"))


def _cuda_available() -> bool:
    if _loaded_torch() is None and not _gpu_device_present():
        return False
    try:
        import torch  # heavy: torch (~3 s), only with a GPU device node or torch already loaded

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch is a core dependency
        return False


def resolve_backend_name(name: str | None = "auto") -> str:
    """Turn ``"auto"``/``None`` into a concrete backend name and validate the others.

    The environment variable ``BRAINLID_BACKEND`` overrides ``"auto"``.
    """
    if name in (None, "auto"):
        name = os.environ.get("BRAINLID_BACKEND") or ("torch_cuda" if _cuda_available() else "numpy")
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)} or 'auto'")
    if name == "torch_cuda" and not _cuda_available():
        raise InputError("backend 'torch_cuda' was requested but torch sees no CUDA device; use 'numpy' or 'torch'")
    return name


def get_backend(name: str | None = "auto"):
    """Return himalaya's backend module for ``name`` (see :data:`BACKENDS`).

    The backend exposes array functions (``asarray``, ``matmul``, ``to_numpy``, ...)
    that himalaya's solvers use; brainlid's alignment maths is written against it.
    himalaya's global backend is not changed (see :func:`use_backend` for calling
    himalaya's own solvers, which read the global one).
    """
    return importlib.import_module(f"himalaya.backend.{resolve_backend_name(name)}")


@contextlib.contextmanager
def use_backend(name: str | None = "auto") -> Iterator[object]:
    """Context manager: set himalaya's global backend for the block (its solvers read it), then restore it."""
    from himalaya.backend import get_backend as _current, set_backend  # heavy: himalaya (~0.9 s, imports scikit-learn)

    before = _current()
    module = set_backend(resolve_backend_name(name), on_error="raise")
    try:
        yield module
    finally:
        set_backend(before, on_error="raise")


def available_cores() -> int:
    """Cores this process may use (respects CPU affinity, e.g. under SLURM or taskset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


_THREADS: int | None = None  # set by set_threads / thread_limits; None: not limited


def _loaded_torch():
    """The torch module if it is already imported, else None (never imports it: ~3 s)."""
    return sys.modules.get("torch")


def compute_threads() -> int:
    """Threads brainlid's compiled kernels (kNN selection and re-ranking) may use.

    The limit of :func:`set_threads` / :func:`thread_limits` if one is active, else torch's
    intra-op threads if torch is loaded, else every available core.
    """
    if _THREADS is not None:
        return _THREADS
    torch = _loaded_torch()
    if torch is not None:
        return max(1, int(torch.get_num_threads()))
    return available_cores()


def set_threads(n: int | None = None) -> int:
    """Limit BLAS, torch and brainlid's kernel threads in this process to ``n`` (default: all available cores).

    Returns the number set. Call it once at worker start-up; see :func:`thread_limits`
    for a temporary limit.
    """
    global _THREADS
    n = available_cores() if n is None else int(n)
    if n < 1:
        raise InputError(f"threads must be >= 1, got {n}")
    threadpool_limits(limits=n)
    _THREADS = n
    try:  # imported even if not loaded yet: a worker that imports torch later must not start all cores
        import torch  # heavy: torch (~3 s), once per worker process

        torch.set_num_threads(n)
    except Exception:  # pragma: no cover - torch is a core dependency
        pass
    return n


_CONTROLLER = None


def _controller():
    """One threadpoolctl controller per process: scanning the loaded BLAS libraries costs ~30 ms,
    too much to repeat in a hot loop (the ridge solver limits threads around each eigendecomposition).

    It is rebuilt when new shared libraries were loaded since the scan. Counting them reads
    /proc/self/maps (2.5 ms with torch and scipy loaded), so that is done only when the number of
    imported modules changed since the last call: shared libraries arrive with imports (numpy,
    scipy, torch load their BLAS and OpenMP when imported), and a call with no import in between
    costs one ``len(sys.modules)``."""
    global _CONTROLLER
    n_modules = len(sys.modules)
    if _CONTROLLER is not None and _CONTROLLER[2] == n_modules:
        return _CONTROLLER[0]
    n_libs = _loaded_library_count()
    if _CONTROLLER is None or _CONTROLLER[1] != n_libs:
        _CONTROLLER = (ThreadpoolController(), n_libs, n_modules)
    else:
        _CONTROLLER = (_CONTROLLER[0], n_libs, n_modules)
    return _CONTROLLER[0]


def _loaded_library_count() -> int:
    try:
        with open("/proc/self/maps") as fh:
            return sum(1 for line in fh if ".so" in line)
    except OSError:  # pragma: no cover - non-Linux
        return -1


@contextlib.contextmanager
def thread_limits(n: int | None) -> Iterator[int]:
    """Context manager: BLAS, torch (if loaded) and brainlid's kernels use at most ``n`` threads inside the block
    (``None``: no change)."""
    global _THREADS
    if n is None:
        yield available_cores()
        return
    torch = _loaded_torch()
    before = torch.get_num_threads() if torch is not None else None
    before_own = _THREADS
    with _controller().limit(limits=int(n)):
        _THREADS = int(n)
        if torch is not None:
            torch.set_num_threads(int(n))
        try:
            yield int(n)
        finally:
            _THREADS = before_own
            if torch is not None:
                torch.set_num_threads(before)
