"""Directories, backend choice, thread limits, atomic writes and the error helper."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from brainlid import backend, config
from brainlid._atomic import atomic_path, atomic_write_text
from brainlid.errors import DependencyError, InputError, require


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path / "parent"))
    assert config.data_root("nsd", root=tmp_path / "explicit") == tmp_path / "explicit"
    assert config.data_root("nsd") == tmp_path / "parent" / "nsd"
    monkeypatch.delenv("BRAINLID_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.data_root("things_eeg2") == tmp_path / "home" / "brainlid_data" / "things_eeg2"


def test_home_and_caches_never_inside_data(tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "bl"))
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path / "data"))
    feat = config.cache_dir("features")
    assert feat.is_dir() and feat.is_relative_to(tmp_path / "bl")
    assert config.results_store_path() == tmp_path / "bl" / "results.sqlite"
    assert not feat.is_relative_to(tmp_path / "data")


def test_backend_resolution(monkeypatch):
    monkeypatch.delenv("BRAINLID_BACKEND", raising=False)
    import torch

    expected = "torch_cuda" if torch.cuda.is_available() else "numpy"
    assert backend.resolve_backend_name("auto") == expected
    monkeypatch.setenv("BRAINLID_BACKEND", "torch")
    assert backend.resolve_backend_name(None) == "torch"
    with pytest.raises(InputError, match="unknown backend"):
        backend.resolve_backend_name("jax")
    b = backend.get_backend("torch")
    x = b.asarray(np.eye(3, dtype=np.float32))
    assert type(x).__module__.startswith("torch")
    assert np.allclose(b.to_numpy(b.matmul(x, x)), np.eye(3))


def test_thread_limits_restore():
    import torch
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with backend.thread_limits(1) as n:
        assert n == 1
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(InputError):
        backend.set_threads(0)


def test_thread_controller_rescans_libraries_only_after_imports(monkeypatch):
    """thread_limits reuses one threadpoolctl controller; /proc/self/maps (2.5 ms with torch loaded) is read again
    only when modules were imported since, and the controller is rebuilt only when that brought new libraries."""
    import types

    real = backend._loaded_library_count
    scans = []
    libs = [real()]

    def counting():
        scans.append(1)
        return libs[0]

    monkeypatch.setattr(backend, "_loaded_library_count", counting)
    first = backend._controller()
    scans.clear()
    for _ in range(20):
        with backend.thread_limits(1):
            pass
    assert scans == [] and backend._controller() is first
    monkeypatch.setitem(sys.modules, "brainlid_test_fake_import", types.ModuleType("brainlid_test_fake_import"))
    assert backend._controller() is first and len(scans) == 1  # an import without new libraries: rescanned, kept
    monkeypatch.setitem(sys.modules, "brainlid_test_fake_import2", types.ModuleType("brainlid_test_fake_import2"))
    libs[0] += 1  # ... and one that loaded a library: a new controller
    assert backend._controller() is not first and len(scans) == 2


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_require_names_the_extra():
    assert require("json", "test") is __import__("json")
    with pytest.raises(DependencyError, match=r"brainlid\[models\]"):
        require("surely_not_a_module_xyz", "models", "timm models")


def test_use_backend_restores_himalaya_global():
    from himalaya.backend import get_backend as current

    before = current().name
    with backend.use_backend("torch") as b:
        assert current().name == "torch" and b.name == "torch"
    assert current().name == before
