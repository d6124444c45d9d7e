"""Feature cache: key components, hits without forward passes, crash/kill -9 resume, concurrency, corruption."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
import torch

import brainlid._version
from brainlid.data import StimulusSet
from brainlid.features import DiskBudgetError, FeatureCache, ModelHandle, Preprocess, extract, load_model
from brainlid.features.cache import CacheEntry, parse_age, parse_size

MODEL_SRC = textwrap.dedent(
    """
    import os, time
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        fail_after = None  # raise after this many forward calls (simulated crash)

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.n_calls = 0

        def forward(self, x):
            self.n_calls += 1
            if self.fail_after is not None and self.n_calls > self.fail_after:
                raise RuntimeError("simulated crash")
            delay = float(os.environ.get("BRAINLID_TEST_DELAY", "0"))
            if delay:
                time.sleep(delay)
            return self.conv2(torch.relu(self.conv(x)))
    """
)

RUNNER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from brainlid.features import extract, load_model
    spec, stim, cache, out = sys.argv[1:5]
    h = load_model(spec)
    calls = [0]
    h.module.register_forward_pre_hook(lambda m, a: calls.__setitem__(0, calls[0] + 1))
    f = extract(h, stim, ["conv", "conv2"], batch_size=4, cache=cache, progress=False)
    np.save(out, np.hstack([np.asarray(f["conv"]), np.asarray(f["conv2"])]))
    print("forward-calls", calls[0])
    """
)


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_SRC)
    (tmp_path / "runner.py").write_text(RUNNER)
    imgs = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "stim.npy", imgs)
    spec = f"module:{tmp_path / 'model.py'}:Net@random"
    return tmp_path, spec, imgs


def _counting(handle):
    calls = [0]
    handle.module.register_forward_pre_hook(lambda m, a: calls.__setitem__(0, calls[0] + 1))
    return calls


def _run(model, stim, cache, layers=("conv", "conv2"), **kw):
    kw.setdefault("batch_size", 4)
    return extract(model, stim, list(layers), cache=cache, progress=False, **kw)


def test_hit_needs_no_forward_and_every_key_component_misses(setup, monkeypatch):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    stim = StimulusSet.from_array(imgs[:8])
    h = load_model(spec)
    calls = _counting(h)
    f0 = _run(h, stim, cache, layers=["conv2"])
    assert calls[0] == 1 + 2  # probe + 2 batches
    base_key = f0.provenance["cache_keys"]["conv2"]

    def check(miss, **kw):
        model = kw.pop("model", h)
        st = kw.pop("stim", stim)
        layers = kw.pop("layers", ["conv2"])
        c = _counting(model) if model is not h else calls
        before = c[0]
        f = _run(model, st, cache, layers=layers, **kw)
        key = f.provenance["cache_keys"][layers[0]]
        if miss:
            assert key != base_key and c[0] > before, kw
        else:
            assert key == base_key and c[0] == before, kw
        return f

    f1 = check(False)  # same everything → hit, no forward pass
    np.testing.assert_array_equal(f1["conv2"], f0["conv2"])
    assert isinstance(f1["conv2"], np.memmap) and not f1["conv2"].flags.writeable

    check(True, layers=["conv"])  # layer
    check(True, pooling="max")  # pooling
    check(True, reduce="srp:4")  # reduction
    check(True, reduce="srp:4:1")  # reduction seed
    check(True, preprocess=Preprocess(mean=(0.5,) * 3, std=(0.5,) * 3))  # preprocessing
    check(True, dtype="bfloat16")  # compute dtype
    check(True, storage_dtype="float16")  # storage dtype
    # model id (same weights, another id)
    check(True, model=ModelHandle(h.module, "module:other.py:Net", h.weights_digest, None, None, dict(h.info)))
    # weights digest (same id, one weight changed)
    h2 = load_model(spec)
    with torch.no_grad():
        h2.module.conv.bias[0] += 1e-3
    check(True, model=ModelHandle(h2.module, h.model_id, load_model(h2.module).weights_digest, None, None, dict(h.info)))
    # stimulus content: one pixel of one image
    imgs2 = imgs[:8].copy()
    imgs2[3, 0, 0, 0] ^= 1
    check(True, stim=StimulusSet.from_array(imgs2))
    # same images, same ids, other order of ids → other content-id pairing
    check(True, stim=StimulusSet.from_array(imgs[:8], ids=np.arange(8)[::-1].copy()))
    # two datasets whose ids are both 0..N-1 but differ in images never share features
    check(True, stim=StimulusSet.from_array(imgs[8:16]))
    # brainlid version
    monkeypatch.setattr(brainlid._version, "__version__", "9.9.9")
    check(True)
    monkeypatch.undo()
    check(False)


@pytest.mark.parametrize("commit_every", [None, 0, 1e9])
def test_resume_after_simulated_crash_recomputes_only_unfinished(setup, commit_every):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    reference = _run(spec, imgs, False)  # 40 images, 10 batches
    h = load_model(spec)
    type(h.module).fail_after = 1 + 4  # probe + 4 batches, then crash
    try:
        with pytest.raises(Exception, match="simulated crash"):  # a failing run commits what it finished
            _run(h, imgs, cache, commit_every=commit_every)
    finally:
        type(h.module).fail_after = None
    entries = FeatureCache(cache).entries()
    assert len(entries) == 2 and not any(e.complete for e in entries)
    h2 = load_model(spec)
    calls = _counting(h2)
    f = _run(h2, imgs, cache)
    assert calls[0] == 1 + 6  # probe + the 6 unfinished batches
    for layer in ("conv", "conv2"):
        np.testing.assert_array_equal(f[layer], reference[layer])
    assert all(e.complete for e in FeatureCache(cache).entries())


def _done_rows(cache):
    out = []
    for e in FeatureCache(cache).entries():
        bits = CacheEntry(cache, e.key)._read_bits(40) if not e.complete else np.ones(40, bool)
        out.append(np.zeros(40, bool) if bits is None else bits)
    return out


def test_kill9_mid_run_then_resume_is_identical(setup):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    env = dict(os.environ, BRAINLID_TEST_DELAY="0.25", BRAINLID_HOME=str(tmp / "home"))
    proc = subprocess.Popen([sys.executable, str(tmp / "runner.py"), spec, str(tmp / "stim.npy"), str(cache), str(tmp / "o.npy")], env=env)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            rows = _done_rows(cache) if cache.exists() else []
            if len(rows) == 2 and min(r.sum() for r in rows) >= 8:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    rows = _done_rows(cache)
    done_batches = [set(np.flatnonzero(r.reshape(10, 4).all(1))) for r in rows]
    assert 2 <= min(len(d) for d in done_batches) and max(len(d) for d in done_batches) < 10
    pending = set(range(10)) - (done_batches[0] & done_batches[1])
    h = load_model(spec)
    calls = _counting(h)
    f = _run(h, str(tmp / "stim.npy"), cache)
    assert calls[0] == 1 + len(pending)
    reference = _run(spec, imgs, False)
    for layer in ("conv", "conv2"):
        np.testing.assert_array_equal(f[layer], reference[layer])  # bit-identical


def test_two_processes_same_key_do_not_corrupt(setup):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    env = dict(os.environ, BRAINLID_TEST_DELAY="0.1", BRAINLID_HOME=str(tmp / "home"))
    procs = [
        subprocess.Popen([sys.executable, str(tmp / "runner.py"), spec, str(tmp / "stim.npy"), str(cache), str(tmp / f"o{i}.npy")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for i in range(2)
    ]
    counts = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
        counts.append(int(out.decode().split("forward-calls")[-1]))
    # one process computed all 10 batches (+ probe); the other waited on the lock (probe only) or hit
    assert sorted(counts)[1] == 11 and sorted(counts)[0] in (0, 1)
    reference = _run(spec, imgs, False)
    ref = np.hstack([reference["conv"], reference["conv2"]])
    for i in range(2):
        np.testing.assert_array_equal(np.load(tmp / f"o{i}.npy"), ref)
    entries = FeatureCache(cache).entries()
    assert len(entries) == 2 and all(e.complete for e in entries)
    for e in entries:
        CacheEntry(cache, e.key).load(verify=True)  # checksums intact


def test_corrupt_entry_is_detected_and_recomputed(setup):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    f0 = _run(spec, imgs[:8], cache, layers=["conv2"])
    good = np.array(f0["conv2"])
    key = f0.provenance["cache_keys"]["conv2"]
    path = CacheEntry(cache, key).data_path
    del f0
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    h = load_model(spec)
    calls = _counting(h)
    with pytest.warns(RuntimeWarning, match="checksum mismatch"):
        f1 = _run(h, imgs[:8], cache, layers=["conv2"])
    assert calls[0] == 1 + 2
    np.testing.assert_array_equal(f1["conv2"], good)
    CacheEntry(cache, key).load(verify=True)
    # a deleted data file is also detected
    del f1
    path.unlink()
    with pytest.warns(RuntimeWarning, match="cannot read"):
        f2 = _run(spec, imgs[:8], cache, layers=["conv2"])
    np.testing.assert_array_equal(f2["conv2"], good)


def test_float16_storage_and_disk_budget(setup):
    tmp, spec, imgs = setup
    f = _run(spec, imgs[:8], tmp / "c", storage_dtype="float16")
    ref = _run(spec, imgs[:8], False)
    assert f["conv2"].dtype == np.float16
    np.testing.assert_allclose(f["conv2"].astype(np.float32), ref["conv2"], rtol=2e-3, atol=2e-3)
    with pytest.raises(DiskBudgetError, match="budget"):
        _run(spec, imgs[:8], tmp / "c2", max_disk="100B")
    assert parse_size("2GB") == 2 << 30 and parse_size("10k") == 10 << 10
    assert parse_age("2d") == 172800 and parse_age("90m") == 5400


def test_cache_list_and_clear(setup):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    _run(spec, imgs[:8], cache)
    _run(ModelHandle(load_model(spec).module, "other-model", "x" * 64, None, None, {}), imgs[:8], cache, layers=["conv"])
    fc = FeatureCache(cache)
    entries = fc.entries()
    assert sorted((e.model.split(":")[0], e.layer) for e in entries) == [("module", "conv"), ("module", "conv2"), ("other-model", "conv")]
    assert all(e.n == 8 and e.complete for e in entries)
    assert {e.layer: e.n_features for e in entries if e.model != "other-model"} == {"conv": 8, "conv2": 16}
    assert fc.clear(older_than="1d") == []  # all fresh
    removed = fc.clear(model="other-model")
    assert [e.model for e in removed] == ["other-model"]
    removed = fc.clear(older_than=0.0, now=time.time() + 10)
    assert len(removed) == 2 and fc.entries() == []


def test_clear_skips_entries_being_written(setup):
    tmp, spec, imgs = setup
    cache = tmp / "cache"
    _run(spec, imgs[:4], cache, layers=["conv"])
    fc = FeatureCache(cache)
    (e,) = fc.entries()
    with CacheEntry(cache, e.key).lock():
        assert fc.clear() == []
    assert len(fc.clear()) == 1


def test_manifest_records_provenance(setup):
    tmp, spec, imgs = setup
    f = _run(spec, imgs[:4], tmp / "c", layers=["conv"], pooling="adaptive:2")
    man = json.loads(CacheEntry(tmp / "c", f.provenance["cache_keys"]["conv"]).manifest_path.read_text())
    assert man["layer"] == "conv" and man["pooling"] == "adaptive:2" and man["shape"] == [4, 32]
    assert man["model_id"] == spec and man["weights"] == load_model(spec).weights_digest
    assert man["version"] == brainlid._version.__version__
    warnings.simplefilter("error")  # a clean hit emits no warning
    _run(spec, imgs[:4], tmp / "c", layers=["conv"], pooling="adaptive:2")
