"""The demo: zoo trained once (session fixture), synthetic NSD through the real loader, the whole pipeline."""

from __future__ import annotations

import numpy as np
import pytest

from brainlid.demo import SUMMARY_COLUMNS, DEMO_DATASET, train_zoo, zoo as zoo_mod


def test_zoo_is_varied_trained_and_cached(demo_home):
    home, zoo, _ = demo_home
    assert len(zoo) >= 8
    entries = {e.name: e for e in zoo_mod.ZOO}
    assert len({entries[m].width for m in zoo["model"]}) >= 4
    assert len({entries[m].depth for m in zoo["model"]}) >= 3
    assert len(set(zoo["train_n"])) >= 2 and len(set(zip(zoo["params"], zoo["train_n"]))) == len(zoo)
    # measured held-out accuracy: well above chance (0.1), not all identical
    assert (zoo["test_acc"] > 0.5).all() and zoo["test_acc"].std() > 0.01
    # cached: a second call loads instead of training, with identical weights
    again = train_zoo(home, log=lambda *a: pytest.fail("retrained"))
    assert again["test_acc"].tolist() == zoo["test_acc"].tolist()


def test_synthetic_nsd_goes_through_the_real_loader(demo_home):
    from brainlid.data import nsd
    from brainlid.data.fixtures import read_truth

    _, _, root = demo_home
    assert (root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat").exists()
    stimuli, brain = nsd.load(root=root, subject=1, roi="nsdgeneral")
    truth = read_truth(root, "nsd", 1)
    assert set(brain.splits) >= {"train", "test"} and brain.splits["test"].size == 150
    assert np.array_equal(np.sort(brain.splits["test"]), np.sort(truth["sharedix"]))
    # the stimuli are the digits (upsampled, grey): 16×16×3 uint8 with 3 equal channels
    img = stimuli.image(0)
    assert img.shape == (16, 16, 3) and img.dtype == np.uint8 and np.array_equal(img[..., 0], img[..., 2])
    assert brain.noise_ceiling is not None and 0 < float(np.nanmean(brain.noise_ceiling)) < 1


def test_generative_features_score_near_the_ceiling(demo_home):
    """Planted truth on the real NSD path: the generative model's own features reach the noise ceiling."""
    from brainlid.data.fixtures import read_truth
    from brainlid.demo import _register_benchmarks
    from brainlid.scoring.cell import score_features

    _, _, root = demo_home
    bench = _register_benchmarks(root)[0]
    truth = read_truth(root, "nsd", 1)
    F = truth["features"].astype(np.float32)
    rng = np.random.default_rng(0)
    feats = {"truth": F, "noise": rng.standard_normal(F.shape).astype(np.float32)}
    scores, _ = score_features(feats, truth["ids10k"], bench, model="generative", geometry=False)
    t = scores[(scores.split == "test") & (scores.metric == "encoding_r2")].set_index("layer")
    assert t.loc["truth", "normalised"] == pytest.approx(1.0, abs=0.2)
    assert abs(t.loc["noise", "value"]) < 0.05
    assert scores.loc[scores.selected, "layer"].unique().tolist() == ["truth"]


@pytest.mark.slow  # the whole demo (about a minute of CPU); still runs in CI
def test_demo_end_to_end(demo_run):
    r = demo_run
    assert list(r.summary.columns) == list(SUMMARY_COLUMNS)
    assert len(r.summary) >= 8 and r.summary["lid_K20"].notna().all() and r.summary["brain_r2"].notna().all()
    text = r.report.read_text()
    assert "SYNTHETIC" in text and "data:image/png;base64," in text
    # figures: scatter, r-vs-K, layer profiles and a glass-brain map of per-voxel R²
    figs = r.out / "analysis" / "figures"
    for pattern in ("scatter_*.png", "r_vs_k_*.png", "layers_*.png", "brain_map_subj01.png"):
        assert list(figs.glob(pattern)), pattern
    assert "brain map" in text
    s = r.scores
    assert set(s["dataset"]) == {DEMO_DATASET, "models"}
    models = set(s["model"])
    assert "baseline:pixels" in models
    assert any(m.endswith("@random") for m in models) and any(m.endswith("#shuffled") for m in models)
    # the zero control is at zero, real models are above it
    test = s[(s.split == "test") & (s.metric == "encoding_r2")]
    shuffled = test[test.model.str.endswith("#shuffled")]["value"]
    assert shuffled.max() < 0.03
    assert r.summary["brain_r2"].max() > 0.1
    # every (model, benchmark) has exactly one selected layer
    enc = s[(s.dataset == DEMO_DATASET) & (s.split == "test") & (s.metric == "encoding_r2")]
    assert (enc[enc.selected].groupby(["model", "benchmark"])["layer"].nunique() == 1).all()
    # geometry: K sweep and global measures on the shared images, once per (model, layer)
    g = r.geometry
    assert {5, 10, 20, 50, 100} <= set(g.loc[g.estimator == "mle", "K"].astype(int))
    assert "participation_ratio" in set(g["estimator"])
    assert not g.duplicated(["model", "layer", "estimator", "K"]).any()
    # the analysis has the headline targets
    head = r.analysis.headline()
    assert {"generalization", "model_model:mutual_knn"} <= set(head["target"])
    assert any(t.startswith("brain:pooled:") for t in head["target"])
    # the demo's own store holds the rows; the main store is untouched
    from brainlid.scoring.store import ResultsStore

    st = ResultsStore(r.out / "results.sqlite")
    assert len(st.scores()) == len(s)


def test_scoring_progress_counts_every_cell(demo_home, monkeypatch):
    """The demo's scoring bar: its total (benchmarks × (models + random twins)) is exactly the number of
    extractions the runner makes, and each advance names the model scored next."""
    import brainlid.scoring.serial as runner
    from brainlid.demo import _register_benchmarks, counting_extract, n_extractions
    from brainlid.scoring.tables import geometry_frame, score_frame

    home, zoo, root = demo_home
    monkeypatch.setenv("BRAINLID_HOME", str(home))
    benches = _register_benchmarks(root)
    models = dict(zip(zoo["model"][:2], zoo["spec"][:2]))

    class Recorder:
        def __init__(self):
            self.steps = []

        def advance(self, n=1, detail=None):
            self.steps.append((n, detail))

    rec = Recorder()
    monkeypatch.setattr(runner, "score_features", lambda *a, **k: (score_frame([]), geometry_frame([])))  # counting, not scoring
    monkeypatch.setattr(runner, "model_model_rows", lambda *a, **k: [])
    runner.score(models, benches, layers={m: zoo_mod.layers_of(m)[-1:] for m in models}, store=False,
                 extract_fn=counting_extract(rec), extract_kwargs={"progress": False})
    assert len(rec.steps) == len(benches) * n_extractions(models.values()) == len(benches) * 4
    assert sum(n for n, _ in rec.steps) == len(rec.steps) - 1  # the last cell ends with the stage
    first = list(models)[0]
    assert [d for _, d in rec.steps[:2]] == [first, f"{first} (random weights)"]


def test_progress_only_on_a_terminal_outside_ci(monkeypatch):
    import io

    from brainlid._progress import Stage, progress_wanted

    class Tty(io.StringIO):
        def isatty(self):
            return True

    for var in ("CI", "BRAINLID_PROGRESS"):
        monkeypatch.delenv(var, raising=False)
    assert progress_wanted(Tty()) and not progress_wanted(io.StringIO())
    monkeypatch.setenv("CI", "true")
    assert not progress_wanted(Tty())
    monkeypatch.setenv("BRAINLID_PROGRESS", "1")
    assert progress_wanted(io.StringIO())
    monkeypatch.setenv("BRAINLID_PROGRESS", "0")
    assert not progress_wanted(Tty())
    with Stage("work", total=3, enabled=True) as st:
        st.advance(detail="a")
        st.advance(2)
        assert st._p.tasks[0].completed == 3 and st._p.tasks[0].fields["detail"] == "a"
    with Stage("quiet", total=3, enabled=False) as st:
        st.advance()
        assert st._p is None
