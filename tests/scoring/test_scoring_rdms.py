"""RDM benchmarks in the scoring layer: registry, split-half selection, stimulus bootstrap, fixtures and real k92."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from brainlid.alignment.brain_rdms import score_brain_rdms
from brainlid.alignment.rsa import compare_rdms, rdm
from brainlid.alignment.rsa_bootstrap import rdm_bootstrap_ci, split_half
from brainlid.alignment.uncertainty import bootstrap_counts
from brainlid.data.rdms import BrainRDMs
from brainlid.errors import InputError
from brainlid.scoring.benchmarks import (RDM_BENCHMARKS, Benchmark, list_benchmarks, load_benchmark_data,
                                         load_benchmark_rdms)
from brainlid.scoring.cell import score_rdm_features

from support import REALDATA
RESNET20 = REALDATA / "cifar_resnets" / "resnet20-12fca82f.th"
SMALL_MODEL = "cifar_resnet:20@random:0"


# ------------------------------------------------------------------------------------- bootstrap
def _brute_force(V: np.ndarray, counts: np.ndarray, m: int, method: str) -> np.ndarray:
    """Materialise the resampled RDMs: every pair of distinct draws, pairs of a stimulus with its copy dropped."""
    n = counts.size
    s = np.repeat(np.arange(n), counts.astype(int))
    a, b = np.triu_indices(s.size, 1)
    i, j = s[a], s[b]
    keep = i != j
    i, j = np.minimum(i[keep], j[keep]), np.maximum(i[keep], j[keep])
    cond = n * i - i * (i + 1) // 2 + (j - i - 1)  # scipy squareform order
    R = V[:, cond]
    return np.atleast_2d(compare_rdms(R[:m], R[m:], method=method))


@pytest.mark.parametrize("method", ["spearman", "pearson", "cosine"])
def test_bootstrap_replicates_equal_materialised_resamples(method):
    rng = np.random.default_rng(1)
    n = 11
    A = np.stack([rdm(rng.standard_normal((n, 5))) for _ in range(2)]).astype(np.float64)
    A[1, ::3] = A[1, 0]  # ties in a model RDM (average ranks must be right)
    B = np.stack([rdm(rng.standard_normal((n, 4))) for _ in range(3)]).astype(np.float64)
    lo, hi, dist = rdm_bootstrap_ci(A, B, n, compare=method, n_boot=25, seed=7, return_distribution=True,
                                    correct=False)
    counts = bootstrap_counts(n, 25, np.random.default_rng(7))
    V = np.vstack([A, B])
    for b in range(25):
        np.testing.assert_allclose(dist[b], _brute_force(V, counts[b], 2, method), rtol=1e-9, atol=1e-12)
    assert lo.shape == hi.shape == (2, 3) and np.all(lo <= hi)
    np.testing.assert_allclose(lo, np.quantile(dist, 0.025, axis=0))


def test_bootstrap_interval_covers_estimate_and_shrinks_with_stimuli():
    rng = np.random.default_rng(0)
    widths = []
    for n in (20, 80):
        F = rng.standard_normal((n, 10))
        m, bnd = rdm(F), rdm(F + rng.standard_normal((n, 10)))
        est = compare_rdms(m, bnd)
        lo, hi = rdm_bootstrap_ci(m, bnd, n, n_boot=200, seed=0)
        assert isinstance(lo, float) and lo < est < hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] * 0.75  # ~1/sqrt(n) narrowing


def test_bootstrap_rejects_bad_input():
    d = rdm(np.random.default_rng(0).standard_normal((6, 3)))
    with pytest.raises(InputError, match="supports"):
        rdm_bootstrap_ci(d, d, 6, compare="pearson_whitened")
    with pytest.raises(InputError, match="over 6 stimuli"):
        rdm_bootstrap_ci(d, d, 7)
    with pytest.raises(InputError, match="n_boot"):
        rdm_bootstrap_ci(d, d, 6, n_boot=3)


# ------------------------------------------------------------------------------------- registry
def test_rdm_benchmarks_registered_with_their_stimulus_sets():
    df = list_benchmarks().set_index("id")
    for bid in RDM_BENCHMARKS:
        assert bid in df.index and df.loc[bid, "kind"] == "rdms" and df.loc[bid, "version"] == 2
    assert df.loc["k92.human.IT.rsa", "lid_stimulus_set"] == "k92" == df.loc["k92.monkey.IT.rsa", "lid_stimulus_set"]
    assert df.loc["algonauts2019.118.MEG_late.rsa", "lid_stimulus_set"] == "algonauts2019.118"
    assert df.loc["nsd.subj01.EBA.encoding", "kind"] == "responses"
    with pytest.raises(InputError, match="brain RDMs"):
        load_benchmark_data("k92.human.IT.rsa")



def test_registry_is_built_from_one_table():
    from brainlid.scoring.benchmarks import BUILTIN_FAMILIES, get_benchmark

    ids = [d["id"] for fam in BUILTIN_FAMILIES for d in fam.definitions()]
    assert len(ids) == len(set(ids)) and set(RDM_BENCHMARKS) <= set(ids)
    for fam in BUILTIN_FAMILIES:
        b = Benchmark(**next(fam.definitions()))
        assert get_benchmark(b.id) == b and b.version == 2 and b.kind == fam.kind
    assert get_benchmark("things_eeg2.sub-10.occipital.rsa").params["pca"] == 100
    assert get_benchmark("algonauts2019.118.IT.rsa").params["rsa_n_boot"] == 1000
    assert RDM_BENCHMARKS["algonauts2019.118.MEG_late.rsa"] == (
        "brainlid.data.algonauts2019", {"image_set": "118", "modality": "meg"}, "MEG_late")
    with pytest.raises(InputError, match="not an RDM benchmark"):
        load_benchmark_rdms("nsd.subj01.EBA.rsa")


def test_old_paths_forward_with_a_deprecation_warning():
    import brainlid.alignment.brain_rdms as old_align
    import brainlid.scoring.rdm_benchmarks as old  # deprecated path on purpose
    from brainlid.alignment import rsa_bootstrap
    from brainlid.scoring import benchmarks, cell

    for name, new in (("rdm_bootstrap_ci", rsa_bootstrap.rdm_bootstrap_ci), ("split_half", split_half),
                      ("CI_METHOD", rsa_bootstrap.CI_METHOD), ("score_rdm_features", cell.score_rdm_features),
                      ("rdm_score_rows", cell.rdm_score_rows), ("load_benchmark_rdms", load_benchmark_rdms)):
        with pytest.warns(DeprecationWarning, match=name):
            assert getattr(old, name) is new
    with pytest.warns(DeprecationWarning, match="scoring.benchmarks"):
        assert old_align.RDM_BENCHMARKS is benchmarks.RDM_BENCHMARKS
    with pytest.warns(DeprecationWarning, match="load_benchmark_rdms"):
        assert old_align.load_rdm_benchmark is load_benchmark_rdms
    with pytest.warns(DeprecationWarning, match="scoring.tables.SCORE_COLUMNS"):
        assert old_align.SCORE_COLUMNS[:2] == ["layer", "subject"]

def test_split_half():
    ids = np.array([f"s{i:02d}" for i in range(15)])[::-1]
    a, b = split_half(ids, seed=3)
    assert a.size == 7 and b.size == 8 and np.intersect1d(a, b).size == 0
    np.testing.assert_array_equal(np.union1d(a, b), np.sort(ids))
    a2, _ = split_half(ids[::-1], seed=3)
    np.testing.assert_array_equal(a, a2)  # depends on the ids, not their order
    assert not np.array_equal(split_half(ids, seed=4)[0], a)
    with pytest.raises(InputError):
        split_half(ids[:5])


# ------------------------------------------------------------------------------------- synthetic scoring
def _synthetic(n=30, n_subjects=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.array([f"img{i:03d}" for i in range(n)])
    truth = rng.standard_normal((n, 6))
    subj = np.stack([rdm(truth @ rng.standard_normal((6, 40)) + 2 * rng.standard_normal((n, 40))) for _ in range(n_subjects)])
    brain = BrainRDMs(subj, ids, roi="IT", dataset="synth")
    feats = {"good": truth @ rng.standard_normal((6, 20)), "noise": rng.standard_normal((n, 20)),
             "mixed": truth @ rng.standard_normal((6, 20)) + 3 * rng.standard_normal((n, 20))}
    perm = rng.permutation(n)  # feature rows in another order than the RDMs: joined by id
    feats = {k: v[perm].astype(np.float32) for k, v in feats.items()}
    bench = Benchmark(id="synth.s.IT.rsa", dataset="synth", subject="s", space="rdm", roi="IT", metric="rsa",
                      kind="rdms", lid_split="all", stimulus_set="synth", params={"rsa_n_boot": 100, "lid_ks": (5, 10)})
    return feats, ids[perm], brain, bench


def test_all_split_equals_score_brain_rdms_and_geometry_on_all_images():
    feats, fids, brain, bench = _synthetic()
    scores, geom = score_rdm_features(feats, fids, bench, brain, model="m")
    ref = score_brain_rdms(feats, fids, brain)
    got = scores[scores.split == "all"].set_index(["layer", "subject"])
    ref = ref.set_index(["layer", "subject"])
    assert set(got.index) == set(ref.index) and len(got) == 3 * 4
    for key in ref.index:
        assert got.loc[key, "value"] == pytest.approx(ref.loc[key, "value"], abs=1e-6)
        assert got.loc[key, "ceiling"] == pytest.approx(ref.loc[key, "ceiling"], abs=1e-9)
        assert got.loc[key, "ceiling_lower"] == pytest.approx(ref.loc[key, "ceiling_lower"], abs=1e-9, nan_ok=True)
        assert got.loc[key, "ceiling_method"] == ref.loc[key, "ceiling_method"]
        assert got.loc[key, "normalised"] == pytest.approx(ref.loc[key, "normalised"], abs=1e-6)
        assert got.loc[key, "ci_method"] == "stimulus-bootstrap-corrected"
        assert got.loc[key, "ci_low"] < got.loc[key, "value"] < got.loc[key, "ci_high"]
    assert (scores[scores.split != "all"].subject == "mean").all()
    # the built-in RDM benchmarks' definitions name the ceilings these rows carry (one vocabulary)
    from brainlid.scoring.benchmarks import get_benchmark

    for bid in ("k92.human.IT.rsa", "algonauts2019.92.IT.rsa"):
        assert get_benchmark(bid).ceiling_methods == ("loso-geometric-mean", "group-split-half")
        assert set(scores.ceiling_method) == set(get_benchmark(bid).ceiling_methods)
    assert scores[scores.split == "test"].ci_low.notna().all() and (scores.n_stimuli[scores.split == "all"] == 30).all()
    sel = scores[scores.selected]
    assert set(sel.layer) == {"good"} and set(sel.split) == {"val", "test", "all"}
    assert set(geom.stimulus_set) == {"synth"} and (geom.n == 30).all() and set(geom.layer) == set(feats)
    # geometry measured on the RDM images in id order, independent of the feature row order
    from brainlid.geometry import lid_sweep

    order = np.argsort(fids)
    want = lid_sweep(feats["good"][order], ks=(5,), estimators=("mle",)).value.iloc[0]
    assert geom[(geom.layer == "good") & (geom.K == 5) & (geom.estimator == "mle")].value.iloc[0] == pytest.approx(want, rel=1e-5)


def test_layer_selection_never_uses_the_reported_half():
    feats, fids, brain, bench = _synthetic()
    scores, _ = score_rdm_features(feats, fids, bench, brain, model="m", geometry=False)
    val_half, test_half = split_half(np.intersect1d(fids, brain.stimulus_ids), 0)
    # scramble every dissimilarity that involves a held-out image: val rows and the choice must not move
    D = np.stack([brain.square(s) for s in range(brain.n_subjects)])
    rng = np.random.default_rng(5)
    t = np.isin(brain.stimulus_ids, test_half)
    for s in range(D.shape[0]):
        noise = rng.uniform(0, 2, D.shape[1:])
        noise = (noise + noise.T) / 2
        mask = t[:, None] | t[None, :]
        D[s][mask] = noise[mask]
        np.fill_diagonal(D[s], 0)
    brain2 = BrainRDMs.from_square(D, brain.stimulus_ids, roi="IT", dataset="synth")
    scores2, _ = score_rdm_features(feats, fids, bench, brain2, model="m", geometry=False)
    v1 = scores[scores.split == "val"].set_index("layer").value
    v2 = scores2[scores2.split == "val"].set_index("layer").value
    pd.testing.assert_series_equal(v1, v2)
    assert set(scores[scores.selected].layer) == set(scores2[scores2.selected].layer)
    t1 = scores[scores.split == "test"].set_index("layer").value
    t2 = scores2[scores2.split == "test"].set_index("layer").value
    assert (t1 - t2).abs().max() > 0.2  # the reported half really is other data
    assert (scores[scores.split == "val"].n_stimuli == val_half.size).all()
    assert (scores[scores.split == "test"].n_stimuli == test_half.size).all()



def test_ceilings_computed_once_per_benchmark_split_and_brain_rdms(monkeypatch):
    """A second model on the same benchmark reuses the ceilings of the first (same rows); other brain RDMs
    under the same benchmark id get their own."""
    from brainlid.scoring.cell import rdms as cell_rdms

    feats, fids, brain, bench = _synthetic(seed=3)
    calls = []
    real = cell_rdms.brain_rdm_ceilings
    monkeypatch.setattr(cell_rdms, "brain_rdm_ceilings", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(cell_rdms, "_CEILINGS", {})
    first, _ = score_rdm_features(feats, fids, bench, brain, model="a", geometry=False)
    assert len(calls) == 3  # val, test, all
    second, _ = score_rdm_features(feats, fids, bench, brain, model="b", geometry=False)
    assert len(calls) == 3
    cols = ["ceiling", "ceiling_lower", "normalised", "value"]
    pd.testing.assert_frame_equal(first[cols], second[cols])
    _, _, brain2, _ = _synthetic(seed=4)
    score_rdm_features(feats, fids, bench, brain2, model="a", geometry=False)
    assert len(calls) == 6

# ------------------------------------------------------------------------------------- Algonauts 2019 fixture
@pytest.fixture(scope="module")
def alg19(tmp_path_factory):
    from brainlid.data.fixtures import write_algonauts2019

    return write_algonauts2019(tmp_path_factory.mktemp("alg19"), image_set="92", n_images=24, n_subjects=3, image_size=32)


def test_algonauts2019_fixture_end_to_end(alg19, tmp_path, monkeypatch):
    from brainlid.features import extract
    from brainlid.scoring import score

    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    res = score(SMALL_MODEL, ["algonauts2019.92.IT.rsa", "algonauts2019.92.MEG_late.rsa"], layers=["layer1", "layer3"],
                data_root=alg19, store=tmp_path / "r.sqlite", baselines=("pixels", "shuffled"), return_result=True,
                out=tmp_path / "out")
    s = res.scores
    assert set(s.benchmark) == {"algonauts2019.92.IT.rsa", "algonauts2019.92.MEG_late.rsa"}
    assert {"baseline:pixels", SMALL_MODEL, f"{SMALL_MODEL}#shuffled"} <= set(s.model)
    assert set(s.split) == {"val", "test", "all"} and s.ci_low.notna().sum() > 0
    rdms = load_benchmark_rdms("algonauts2019.92.IT.rsa", alg19)
    feats = extract(SMALL_MODEL, rdms.stimuli, ["layer1", "layer3"], progress=False)
    ref = score_brain_rdms(feats, None, rdms)
    mine = s[(s.model == SMALL_MODEL) & (s.benchmark == "algonauts2019.92.IT.rsa") & (s.split == "all")]
    for layer in ("layer1", "layer3"):
        want = ref[(ref.layer == layer) & (ref.subject == "mean")].iloc[0]
        got = mine[(mine.layer == layer) & (mine.subject == "mean")].iloc[0]
        assert got.value == pytest.approx(want.value, abs=1e-6) and got.ceiling == pytest.approx(want.ceiling)
    assert (mine.feature_cache_key.str.len() > 0).all()
    g = res.geometry
    assert set(g.stimulus_set) == {"algonauts2019.92"} and (g.n == 24).all()
    assert len(g.drop_duplicates(["model", "layer", "estimator", "K"])) == len(g)  # measured once for both benchmarks
    stored = res.store.scores()
    assert len(stored[stored.benchmark == "algonauts2019.92.IT.rsa"]) == len(s[s.benchmark == "algonauts2019.92.IT.rsa"])


# ------------------------------------------------------------------------------------- real k92
@pytest.mark.skipif(not (REALDATA / "k92").is_dir() or not RESNET20.exists(), reason="real k92 data / CIFAR ResNets absent")
def test_cli_score_real_k92(tmp_path, monkeypatch, capsys):
    from brainlid.cli import main
    from brainlid.data import k92
    from brainlid.features import extract

    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    spec = f"cifar_resnet:20@{RESNET20}"
    out = tmp_path / "out"
    assert main(["score", "--model", spec, "--benchmark", "k92.human.IT.rsa", "--data-root", str(REALDATA / "k92"),
                 "--layers", "layer2,layer3", "--no-store", "--no-baselines", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed and {r["metric"] for r in printed} == {"rsa_spearman"}
    s = pd.read_parquet(out / "scores.parquet")
    row = s[(s.layer == "layer3") & (s.split == "all") & (s.subject == "mean")].iloc[0]
    ds = k92.load(REALDATA / "k92")
    feats = extract(spec, ds.stimuli, ["layer3"], progress=False)
    ref = score_brain_rdms(feats, None, ds["human.IT"])
    ref = ref[(ref.layer == "layer3") & (ref.subject == "mean")].iloc[0]
    assert row.value == pytest.approx(ref.value, abs=1e-6)
    assert 0.25 < row.value < 0.35  # ~0.30, as the real-data test found
    assert row.ceiling == pytest.approx(ref.ceiling) and row.ci_low < row.value < row.ci_high
    assert row.ceiling_method == "group-split-half" and row.normalised == pytest.approx(row.value / row.ceiling)
    assert row.n_stimuli == 92 and set(s[s.split == "all"].subject) == {"BE", "KO", "SN", "TI", "mean"}
    geom = pd.read_parquet(out / "geometry.parquet")
    assert set(geom.stimulus_set) == {"k92"} and (geom.n == 92).all()
