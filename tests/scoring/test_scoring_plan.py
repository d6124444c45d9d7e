"""The grid planner shared by the serial and the Dask runners (brainlid.scoring.plan)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brainlid.data import BrainData
from brainlid.data.stimuli import StimulusSet
from brainlid.errors import InputError
from brainlid.features.models import load_model
from brainlid.scoring import plan as P
from brainlid.scoring.baselines import PIXELS_MODEL
from brainlid.scoring.benchmarks import Benchmark, UnknownBenchmarkError

MLP_RANDOM = "entrypoint:brainlid.demo.zoo:mlp_w64_d3@random"
CNN_RANDOM = "entrypoint:brainlid.demo.zoo:cnn_c4_d2@random"
MLP_LAYERS = ("hidden.0", "hidden.1", "embed")


@pytest.fixture(scope="module")
def mlp_weights(tmp_path_factory):
    """An MLP spec with a weights file (so it has a random-weights twin) and its model id."""
    d = tmp_path_factory.mktemp("weights")
    torch.save(load_model("entrypoint:brainlid.demo.zoo:mlp_w64_d3@random:3").module.state_dict(), d / "mlp.pt")
    return f"entrypoint:brainlid.demo.zoo:mlp_w64_d3@{d / 'mlp.pt'}", "entrypoint:brainlid.demo.zoo:mlp_w64_d3@mlp.pt"


def _bench(subject: str, metric: str = "encoding", lid_n: int | None = None, n: int = 40, n_test: int = 12,
           with_images: bool = True) -> Benchmark:
    """An in-memory benchmark: n random 16×16 images, 10 units; the last n_test ids are the test (LID) split.
    Benchmarks built with the same (subject, n, n_test) share their LID stimulus ids."""
    rng = np.random.default_rng(len(subject) + n)
    ids = np.arange(100, 100 + n)
    stim = StimulusSet.from_array(rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), ids=ids) if with_images else None
    brain = BrainData.from_arrays(rng.standard_normal((n, 10)), ids, splits={"train": ids[:-n_test], "test": ids[-n_test:]},
                                  dataset="plan", subject=subject)
    return Benchmark(id=f"plan.{subject}.all.{metric}", dataset="plan", subject=subject, space="", roi="all",
                     metric=metric, lid_n=lid_n, params={"pca": None, "n_boot": 0, "rsa_n_boot": 0},
                     loader=lambda root=None: (stim, brain))


def _summary(groups):
    return [(g.model, g.source, g.layers, g.extract_layers, g.geometry, g.base) for g in groups]


# ----------------------------------------------------------------------------- names
def test_names_agree_with_the_feature_provenance(mlp_weights):
    spec, mid = mlp_weights
    named, explicit = P.named_models({"a": spec, 7: MLP_RANDOM})
    assert named == {"a": spec, "7": MLP_RANDOM} and explicit
    named, explicit = P.named_models([spec, MLP_RANDOM])
    assert named == {spec: spec, MLP_RANDOM: MLP_RANDOM} and not explicit
    module = load_model(CNN_RANDOM).module
    assert P.named_models(module) == ({type(module).__name__: module}, False)
    # without explicit names: the model id, the id the extraction records in its provenance
    assert P.model_name(spec, spec, False) == mid  # the weights path is shortened to the file name
    assert P.model_name("x", spec, True) == "x"
    from brainlid.features import extract

    stim = StimulusSet.from_array(np.zeros((4, 16, 16, 3), dtype=np.uint8), ids=np.arange(4))
    for m in (spec, module):
        prov = extract(m, stim, ["embed"], cache=False, progress=False).provenance
        assert P.model_name("key", m, False) == prov["model_id"]
    assert P.model_name("key", module, False).startswith("nn:brainlid.demo.zoo.")


def test_two_models_with_one_name_are_refused(tmp_path):
    sd = load_model(MLP_RANDOM).module.state_dict()
    specs = []
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        torch.save(sd, tmp_path / d / "w.pt")
        specs.append(f"entrypoint:brainlid.demo.zoo:mlp_w64_d3@{tmp_path / d / 'w.pt'}")
    with pytest.raises(InputError, match="both be named .*w.pt.* mapping"):
        P.plan_grid(specs, [_bench("s1")], layers=["embed"])
    grid = P.plan_grid({"a": specs[0], "b": specs[1]}, [_bench("s1")], layers=["embed"])  # named: fine
    assert [m.name for m in grid.models] == ["a", "b"]


# ----------------------------------------------------------------------------- layers
def test_layer_resolution_by_name_glob_and_per_model_mapping():
    # names and globs resolve to module names in depth order, whatever order they were given in
    grid = P.plan_grid(MLP_RANDOM, [_bench("s1")], layers=["embed", "hidden.*"], baselines=False)
    assert grid.models[0].layers == MLP_LAYERS
    assert P.plan_grid(MLP_RANDOM, [_bench("s1")], layers="hidden.1,embed").models[0].layers == ("hidden.1", "embed")
    assert P.plan_grid(MLP_RANDOM, [_bench("s1")], layers=["re:^hidden\\.\\d$"]).models[0].layers == ("hidden.0", "hidden.1")
    # a mapping is keyed like the models: by spec string without names, by name with them
    by_spec = P.plan_grid([MLP_RANDOM, CNN_RANDOM], [_bench("s1")], layers={MLP_RANDOM: ["embed"], CNN_RANDOM: ["blocks.*"]})
    assert {m.name: m.layers for m in by_spec.models} == {MLP_RANDOM: ("embed",), CNN_RANDOM: ("blocks.0", "blocks.1")}
    by_name = P.plan_grid({"m": MLP_RANDOM, "c": CNN_RANDOM}, [_bench("s1")], layers={"m": ["hidden.1"], "c": ["embed"]})
    assert {m.name: m.layers for m in by_name.models} == {"m": ("hidden.1",), "c": ("embed",)}
    # no layers: the top-level child modules, a ModuleList (never called itself) replaced by its children
    assert P.plan_grid(MLP_RANDOM, [_bench("s1")]).models[0].layers == ("gray", "hidden.0", "hidden.1", "embed", "head")
    with pytest.raises(InputError, match="no entry for model 'c'"):
        P.plan_grid({"m": MLP_RANDOM, "c": CNN_RANDOM}, [_bench("s1")], layers={"m": ["embed"]})
    with pytest.raises(InputError, match="nope"):
        P.plan_grid(MLP_RANDOM, [_bench("s1")], layers=["nope"])


def test_default_layers_are_all_extractable():
    """The default layers are modules the forward pass calls, whatever the model's nesting."""
    from torch import nn

    from brainlid.features import extract

    class Wrapped(nn.Module):  # one wrapper child: described by the wrapper's children
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))

        def forward(self, x):
            return self.net(x)

    class Looped(nn.Module):  # blocks in a ModuleDict of ModuleLists, looped over in forward
        def __init__(self):
            super().__init__()
            self.stages = nn.ModuleDict({"a": nn.ModuleList([nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1)]),
                                         "b": nn.ModuleList([nn.Conv2d(3, 2, 1)])})
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            for stage in self.stages.values():
                for block in stage:
                    x = block(x)
            return self.pool(x)

    assert P.default_layers(Wrapped()) == ["net.0", "net.1", "net.2"]
    assert P.default_layers(Looped()) == ["stages.a.0", "stages.a.1", "stages.b.0", "pool"]
    imgs = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    for spec in (MLP_RANDOM, CNN_RANDOM):
        f = extract(spec, imgs, P.default_layers(spec), cache=False, progress=False)  # raised for "hidden"/"blocks"
        assert all(f[layer].shape[0] == 3 for layer in P.default_layers(spec))
    f = extract(Looped(), imgs, P.default_layers(Looped()), cache=False, progress=False)
    assert f["stages.b.0"].shape == (3, 2)


def test_one_layer_selection_shared_by_several_models():
    """Each model takes the selectors that match it; a selector matching no model is an error."""
    both = {"m": MLP_RANDOM, "c": CNN_RANDOM}
    grid = P.plan_grid(both, [_bench("s1")], layers="hidden.*,blocks.*,embed")
    assert {m.name: m.layers for m in grid.models} == {"m": MLP_LAYERS, "c": ("blocks.0", "blocks.1", "embed")}
    with pytest.raises(InputError, match=r"'hiden\.\*' matches no module.*nor in any of the other models"):
        P.plan_grid(both, [_bench("s1")], layers="hiden.*,embed")
    with pytest.raises(InputError, match=r"model 'c' has none of the layers hidden\.\*.*brainlid layers entrypoint"):
        P.plan_grid(both, [_bench("s1")], layers="hidden.*")
    with pytest.raises(InputError, match="did you mean embed"):
        P.plan_grid(both, [_bench("s1")], layers=["embedd"])
    # one model: every selector must match (a typo is not silently dropped)
    with pytest.raises(InputError, match="blocks"):
        P.plan_grid(MLP_RANDOM, [_bench("s1")], layers="hidden.*,blocks.*")


# ----------------------------------------------------------------------------- groups
@pytest.mark.parametrize("explicit", [True, False])
@pytest.mark.parametrize("baselines", [True, False, ("pixels",), ("random",), ("shuffled",), ("shuffled", "pixels")])
def test_groups_per_baseline_choice(mlp_weights, explicit, baselines):
    spec, mid = mlp_weights
    models = {"trained": spec, "rnd": CNN_RANDOM} if explicit else [spec, CNN_RANDOM]
    layers = {("trained" if explicit else spec): list(MLP_LAYERS), ("rnd" if explicit else CNN_RANDOM): ["embed"]}
    bench = _bench("s1")
    grid = P.plan_grid(models, [bench], layers=layers, baselines=baselines)
    want_b = {"pixels", "random", "shuffled"} if baselines is True else set(baselines or ())
    name = "trained" if explicit else mid
    cnn = "rnd" if explicit else CNN_RANDOM
    twin = "entrypoint:brainlid.demo.zoo:mlp_w64_d3@random"  # the random-weights spec of the trained MLP
    want = []
    if "pixels" in want_b:
        want.append((PIXELS_MODEL, "pixels", ("pixels",), ("pixels",), True, ""))
    want.append((name, "cache", MLP_LAYERS, MLP_LAYERS, True, name))
    if "random" in want_b:  # named <name>@random with names, else its spec; no twin for an already random model
        want.append((f"{name}@random" if explicit else twin, "random", MLP_LAYERS, MLP_LAYERS, True, name))
    if "shuffled" in want_b:  # the last layer only, read from the model's own extraction; never geometry
        want.append((f"{name}#shuffled", "shuffled", ("embed",), MLP_LAYERS, False, name))
    want.append((cnn, "cache", ("embed",), ("embed",), True, cnn))
    if "shuffled" in want_b:
        want.append((f"{cnn}#shuffled", "shuffled", ("embed",), ("embed",), False, cnn))
    groups = grid.groups(bench, np.arange(5))
    assert _summary(groups) == want
    spec_of = {g.model: g.spec for g in groups}
    assert spec_of[name] == spec and spec_of[cnn] == CNN_RANDOM
    if "random" in want_b:
        assert spec_of[want[1 + ("pixels" in want_b)][0]] == twin
    if "shuffled" in want_b:
        assert spec_of[f"{name}#shuffled"] == spec  # extracted as the model (one extraction serves both)
    with pytest.raises(InputError, match="unknown baseline"):
        P.plan_grid(models, [bench], layers=layers, baselines=("pixel",))


def test_geometry_once_per_model_and_lid_set_and_model_model_once_per_lid_set():
    a, b = _bench("s1"), _bench("s1", metric="rsa")  # same LID stimuli
    c = _bench("s1", lid_n=6)  # the first 6 of them: another LID set
    d = _bench("s2", n=44)  # other stimuli altogether
    grid = P.plan_grid({"m": MLP_RANDOM, "c": CNN_RANDOM}, [a, b, c, d, a], layers=["embed"],
                       baselines=("pixels", "shuffled"))
    plans = list(grid)
    assert [bp.bench.id for bp in plans] == [a.id, b.id, c.id, d.id, a.id]
    geo = [{g.model: g.geometry for g in bp.groups} for bp in plans]
    first = {PIXELS_MODEL: True, "m": True, "m#shuffled": False, "c": True, "c#shuffled": False}
    again = dict.fromkeys(first, False)
    assert geo == [first, again, first, first, again]
    assert [bp.model_model for bp in plans] == [True, False, True, True, False]
    assert plans[0].mm_layers == {"m": "embed", "c": "embed"} and plans[1].mm_layers == {}
    assert plans[0].mm_cells(["mutual_knn", "cka"]) == [
        ("scores", n, "embed", f"models.plan.s1.test.{m}", 1) for n in ("m", "c") for m in ("mutual_knn", "cka")]
    assert plans[2].mm_cells(["cka"])[0][3] == "models.plan.s1.test[6].cka"
    # ridge_r2 rows are version 2 (relative α grid); the cells the Dask runner checks carry the rows' versions
    from brainlid.scoring.cell import model_model_rows

    rng = np.random.default_rng(0)
    feats = {"m": rng.standard_normal((60, 5)), "c": rng.standard_normal((60, 4))}
    rows = model_model_rows(feats, stimulus_set="plan.s1.test", metrics=("mutual_knn", "ridge_r2"),
                            layers=plans[0].mm_layers, n_components=3)
    cells = {c[1:] for c in plans[0].mm_cells(["mutual_knn", "ridge_r2"])}
    assert {(r["model"], r["layer"], r["benchmark"], r["benchmark_version"]) for r in rows} == cells
    assert {(r["metric"], r["benchmark_version"]) for r in rows} == {("mutual_knn", 1), ("ridge_r2", 2)}
    np.testing.assert_array_equal(plans[2].lid_ids, np.arange(128, 134))
    np.testing.assert_array_equal(plans[0].lid_ids, np.arange(128, 140))
    # the data come with the plan: stimuli restricted to ids with responses
    assert len(plans[3].stimuli) == 44 and plans[3].brain.subject == "s2"
    # iterating again starts afresh: the same flags
    assert [{g.model: g.geometry for g in bp.groups} for bp in grid] == geo
    # one model: no model–model task anywhere
    assert not any(bp.model_model for bp in P.plan_grid(MLP_RANDOM, [a, c], layers=["embed"]))


def test_lid_ids_and_benchmark_inputs():
    bench = _bench("s1", lid_n=50)
    stim, brain = bench.loader()
    with pytest.raises(InputError, match="LID on 50 stimuli but its test split has 12"):
        P.lid_ids(bench, brain)
    with pytest.raises(InputError, match="LID on 50"):  # when the plan is walked, before any scoring
        next(iter(P.plan_grid(MLP_RANDOM, [bench], layers=["embed"])))
    # stimuli without responses are dropped; a benchmark without images cannot be planned
    ids = np.arange(100, 140)
    big = StimulusSet.from_array(np.zeros((45, 16, 16), dtype=np.uint8), ids=np.arange(100, 145))
    b2 = Benchmark(id="plan.s3.all.encoding", dataset="plan", subject="s3", space="", roi="all", metric="encoding",
                   loader=lambda root=None: (big, brain))
    sub, _ = P.benchmark_inputs(b2)
    np.testing.assert_array_equal(sub.ids, ids)
    with pytest.raises(InputError, match="no stimulus images"):
        P.benchmark_inputs(_bench("s4", with_images=False))
    assert P.mm_benchmark_id("k92", "cka") == "models.k92.cka"


def test_bad_grids_fail_before_any_data_are_read():
    calls = []
    b = Benchmark(id="plan.s9.all.encoding", dataset="plan", subject="s9", space="", roi="all", metric="encoding",
                  loader=lambda root=None: calls.append(root))
    with pytest.raises(InputError, match="at least one model and one benchmark"):
        P.plan_grid([], [b])
    with pytest.raises(InputError, match="at least one model and one benchmark"):
        P.plan_grid(MLP_RANDOM, [])
    with pytest.raises(UnknownBenchmarkError, match="unknown benchmark"):
        P.plan_grid(MLP_RANDOM, [b, "no.such.bench.encoding"])
    with pytest.raises(InputError):
        P.plan_grid(MLP_RANDOM, [b], layers=["embed"], baselines=["random", "noise"])
    assert calls == []


# ----------------------------------------------------------------------------- the runners follow the plan
def test_serial_runner_rows_follow_the_plan(tmp_path, monkeypatch):
    from brainlid.scoring.serial import score

    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path))
    benches = [_bench("s1"), _bench("s1", metric="rsa"), _bench("s1", lid_n=6)]
    models = {"m": MLP_RANDOM, "c": CNN_RANDOM}
    kw = dict(layers={"m": ["hidden.1", "embed"], "c": ["embed"]}, baselines=("pixels", "shuffled"))
    res = score(models, benches, store=False, mm_metrics=("mutual_knn",), return_result=True, **kw)
    plans = list(P.plan_grid(models, benches, **kw))
    s, g = res.scores, res.geometry
    for bp in plans:
        part = s[s.benchmark == bp.bench.id]
        assert set(zip(part.model, part.layer)) == {(gr.model, l) for gr in bp.groups for l in gr.layers}
    want_geo = {(gr.model, l, bp.bench.lid_stimulus_set) for bp in plans for gr in bp.groups if gr.geometry
                for l in gr.layers}
    assert set(zip(g.model, g.layer, g.stimulus_set)) == want_geo
    mm = s[s.dataset == "models"]
    assert set(mm.benchmark) == {f"models.{bp.bench.lid_stimulus_set}.mutual_knn" for bp in plans if bp.model_model}
    assert set(zip(mm.model, mm.layer)) == {("m", "embed"), ("c", "embed")}
