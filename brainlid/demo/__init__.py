"""``brainlid demo``: the whole pipeline, offline, on material that ships with the dependencies.

1. **Stimuli** — scikit-learn's bundled handwritten digits (1,797 real 8 × 8 images), upsampled
   ×2 to 16 × 16 RGB, split (seeded) into train 50 % / validation 20 % / test 30 %.
2. **Model zoo** — :data:`brainlid.demo.zoo.ZOO`: 12 small MLPs and CNNs of different widths,
   depths and training-set sizes, trained with fixed seeds on the train split (best epoch on
   validation), each with its held-out test accuracy (its "generalization"). Weights are cached as
   ``.safetensors`` under ``$BRAINLID_HOME/demo/zoo-v1`` after the first run.
3. **Brain data — SYNTHETIC.** Two subjects written in the exact NSD format by the fixture
   writer (:func:`brainlid.data.fixtures.write_nsd`) and loaded back through the real NSD loader.
   Generative model (documented in :mod:`brainlid.data.fixtures._model`): each image has features
   ``F = [one-hot digit class (10), first 6 principal components of the pixels, z-scored]``; each
   synthetic voxel's signal is a random linear read-out of F, standardised; each trial adds
   Gaussian noise with a per-voxel SNR drawn from U(0.2, 1.5) (so the noise ceiling is known), plus
   NSD-like baselines, gains and session effects, stored as int16 PSC × 300. The 150 shared
   ("test") images are digits from the zoo's **test** split, never seen in training. These are
   not brains; they only exercise the machinery.
4. **Scoring** — the real extraction path (feature cache under ``$BRAINLID_HOME``), voxelwise
   encoding (ridge, α by 3-fold inner CV, best layer on a validation split) per subject and RSA
   for subject 1, the baselines (pixels, random weights, shuffled features), model–model
   alignment (mutual kNN, linear CKA; ``brainlid score`` adds the paper's ridge R², skipped here
   for time), LID K-sweeps and global dimensions on the shared images.
5. **Analysis** — :func:`brainlid.analysis.analyze`: LID at K = 20 (fixed in advance) vs brain
   alignment, model–model alignment and digit accuracy; figures and an HTML report.

Whatever relation comes out is reported as is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from .._atomic import atomic_path, atomic_write_text
from .._progress import Stage
from ..analysis import analyze
from ..config import brainlid_home
from ..data.cards import get_card
from ..data.fixtures import write_nsd
from ..errors import InputError
from ..features import extract, parse_spec
from ..geometry import DEFAULT_K
from ..plotting import brain_map
from ..scoring.baselines import random_weights_spec
from ..scoring.benchmark_data import nsd_loader
from ..scoring.benchmarks import Benchmark, load_benchmark_data, register_benchmark
from ..scoring.cell import unit_scores_for_layer
from ..scoring.serial import score
from . import zoo as zoo_mod

__all__ = ["run_demo", "DemoResult", "digits_stimuli", "train_zoo", "write_synthetic_nsd", "SUMMARY_COLUMNS",
           "DEMO_DATASET"]

ZOO_VERSION = "zoo-v1"
DEMO_DATASET = "nsd_synthetic"
N_SHARED = 150
N_UNIQUE = 160
SUBJECTS = (1, 2)
K_HEADLINE = DEFAULT_K

#: The summary table's columns, in order (explained in the README).
SUMMARY_COLUMNS = {
    "model": "zoo entry (mlp_w<width>_d<depth> / cnn_c<channels>_d<depth>; _n<N>: trained on N images)",
    "params": "number of trainable parameters",
    "train_n": "training images used",
    "test_acc": "held-out digit accuracy on the test split (the model's 'generalization')",
    "lid_K20": "local intrinsic dimension of the last layer (MLE, K=20, mean over the 150 shared images)",
    "pr": "participation ratio of the same features (a global dimension)",
    "brain_r2": "encoding R² of the validation-selected layer on the test images, mean over voxels and the 2 synthetic subjects",
    "brain_norm": "brain_r2 divided by the noise ceiling (fraction of explainable variance explained)",
    "rsa": "RSA Spearman rho between last-layer and synthetic-voxel RDMs (subject 1)",
    "mknn": "mean mutual-kNN alignment (k=10) with every other zoo model",
}


@dataclass
class DemoResult:
    summary: pd.DataFrame
    scores: pd.DataFrame
    geometry: pd.DataFrame
    analysis: object
    zoo: pd.DataFrame
    out: Path
    report: Path
    timings: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- stimuli
def digits_stimuli(seed: int = 0):
    """The digits as 16×16 RGB uint8 images with labels and a seeded train/val/test split.

    Returns ``(images (1797, 16, 16, 3) uint8, labels (1797,), split (1797,) of "train"/"val"/"test")``.
    """
    d = load_digits()
    img = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # 0..16 → 0..255
    img = np.repeat(np.repeat(img, 2, axis=1), 2, axis=2)  # 8×8 → 16×16
    img = np.repeat(img[..., None], 3, axis=3)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(img))
    n_tr, n_va = int(0.5 * len(img)), int(0.2 * len(img))
    split = np.empty(len(img), dtype=object)
    split[perm[:n_tr]] = "train"
    split[perm[n_tr: n_tr + n_va]] = "val"
    split[perm[n_tr + n_va:]] = "test"
    return img, d.target.astype(np.int64), split.astype(str)


def _as_input(images: np.ndarray) -> np.ndarray:
    """uint8 (n, H, W, 3) → float32 (n, 3, H, W) in [0, 1]: what the extraction path feeds the models."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


# --------------------------------------------------------------------------- zoo
def train_zoo(home: Path | None = None, seed: int = 0, log=print, progress: bool | None = None) -> pd.DataFrame:
    """Train (or load from the cache) every zoo model; returns one row per model.

    Columns: ``model, spec, params, train_n, val_acc, test_acc, weights``. The cache folder is
    ``$BRAINLID_HOME/demo/zoo-v1``; a manifest records the zoo definition and data digest, and the
    cache is rebuilt when either changes. ``progress``: a bar over the models while training
    (None: on a terminal outside CI, :func:`brainlid._progress.progress_wanted`).
    """
    # heavy: torch (~3 s); `import brainlid.demo` (the zoo's entry points, write_synthetic_nsd) stays without it
    import torch

    home = Path(home) if home is not None else brainlid_home()
    folder = home / "demo" / ZOO_VERSION
    images, labels, split = digits_stimuli(seed)
    ident = hashlib.sha256(json.dumps([repr(e) for e in zoo_mod.ZOO] + [seed]).encode() + images.tobytes()).hexdigest()
    manifest = folder / "manifest.json"
    if manifest.exists():
        try:
            man = json.loads(manifest.read_text())
        except json.JSONDecodeError:
            man = {}
        if man.get("identity") == ident and all((folder / f"{r['model']}.safetensors").exists() for r in man.get("models", [])):
            df = pd.DataFrame(man["models"])
            df["weights"] = [str(folder / f"{m}.safetensors") for m in df["model"]]
            df["spec"] = [f"entrypoint:brainlid.demo.zoo:{m}@{w}" for m, w in zip(df["model"], df["weights"])]
            return df
    folder.mkdir(parents=True, exist_ok=True)
    X = _as_input(images)
    tr, va, te = (split == s for s in ("train", "val", "test"))
    rows = []
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is fastest and reproducible
    try:
        with Stage("training the model zoo", total=len(zoo_mod.ZOO), enabled=progress) as stage:
            rows = _train_all(zoo_mod, X, labels, tr, va, te, folder, seed, log, stage.advance)
    finally:
        torch.set_num_threads(n_threads)
    atomic_write_text(manifest, json.dumps({"identity": ident, "models": rows}, indent=1))
    df = pd.DataFrame(rows)
    df["weights"] = [str(folder / f"{m}.safetensors") for m in df["model"]]
    df["spec"] = [f"entrypoint:brainlid.demo.zoo:{m}@{w}" for m, w in zip(df["model"], df["weights"])]
    return df


def _train_all(zoo, X, labels, tr, va, te, folder, seed, log, done=lambda: None) -> list[dict]:
    # heavy: torch (~3 s), as in train_zoo
    import torch
    from safetensors.torch import save_file

    rows = []
    for i, e in enumerate(zoo.ZOO):
        t0 = time.perf_counter()
        model, hist = zoo.train_model(e.name, X[tr], labels[tr], X[va], labels[va], seed=seed + i)
        with torch.no_grad():
            test_acc = float((model(torch.from_numpy(X[te])).argmax(1).numpy() == labels[te]).mean())
        path = folder / f"{e.name}.safetensors"
        with atomic_path(path) as tmp:
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
        rows.append({"model": e.name, "params": zoo.n_params(model), "train_n": int(min(e.n_train or tr.sum(), tr.sum())),
                     "val_acc": max(hist), "test_acc": test_acc})
        log(f"  trained {e.name:<18} test acc {test_acc:.3f}  ({time.perf_counter() - t0:.1f} s)")
        done()
    return rows


# --------------------------------------------------------------------------- synthetic brains
def generative_features(images: np.ndarray, labels: np.ndarray, n_pcs: int = 6) -> np.ndarray:
    """The synthetic cortex's features: ``[one-hot(label), first n_pcs pixel PCs]``, each column z-scored."""
    pix = images[..., 0].reshape(len(images), -1).astype(np.float64) / 255.0
    pcs = PCA(n_components=n_pcs, random_state=0).fit_transform(pix)
    F = np.concatenate([np.eye(10)[labels], pcs], axis=1)
    return (F - F.mean(0)) / F.std(0)


def write_synthetic_nsd(root: Path, seed: int = 0) -> Path:
    """Write the demo's synthetic NSD copy (subjects 1 and 2, func1pt8mm) for the digits; return ``root``.

    Shared (test) images: 150 digits of the zoo's test split; each subject's 160 unique images
    come from the remaining digits. A marker file makes a second call with the same seed a no-op.
    """
    root = Path(root)
    marker = root / ".brainlid-demo-complete"
    ident = f"demo-nsd-v1 seed={seed} shared={N_SHARED} unique={N_UNIQUE} subjects={SUBJECTS}"
    if marker.exists() and marker.read_text() == ident:
        return root
    images, labels, split = digits_stimuli(seed)
    F = generative_features(images, labels)
    rng = np.random.default_rng(seed + 1)
    test_idx = np.flatnonzero(split == "test")
    shared = rng.choice(test_idx, size=N_SHARED, replace=False)
    rest = rng.permutation(np.setdiff1d(np.arange(len(images)), shared))
    need = 8 * N_UNIQUE  # the NSD design always covers 8 subjects
    if rest.size < need:
        raise InputError("not enough digits for the synthetic design")
    order = np.r_[shared, rest[:need]]
    write_nsd(root, subjects=SUBJECTS, n_images=N_SHARED + N_UNIQUE, n_shared=N_SHARED, n_sessions=3,
              shape=(10, 12, 8), spaces=("func1pt8mm",), img_size=16, n_total=4000, seed=seed,
              images=images[order], features=F[order])
    atomic_write_text(marker, ident)
    return root


def _register_benchmarks(root: Path):
    out = []
    for s in SUBJECTS:
        for metric in ("encoding", "rsa") if s == SUBJECTS[0] else ("encoding",):
            subj = f"subj{s:02d}"
            bid = f"{DEMO_DATASET}.{subj}.nsdgeneral.{metric}"
            loader = nsd_loader(subj, "func1pt8mm", "nsdgeneral")
            b = Benchmark(
                id=bid, dataset=DEMO_DATASET, subject=subj, space="func1pt8mm", roi="nsdgeneral", metric=metric,
                split="test", ceiling="ncsnr" if metric == "encoding" else "none", version=2,
                description=f"SYNTHETIC NSD-format subject {s} (brainlid demo); {metric}",
                params={"n_boot": 300, "cv": 3, "lid_ks": (5, 10, 20, 50, 100)},
                loader=lambda root_=None, _l=loader, _r=root: _l(_r),
            )
            register_benchmark(b, overwrite=True)
            out.append(b)
    return out


# --------------------------------------------------------------------------- the pipeline
def run_demo(out: str | os.PathLike | None = None, *, home: str | os.PathLike | None = None, seed: int = 0,
             log=print, progress: bool | None = None) -> DemoResult:
    """Run the demo end to end; returns the tables, the analysis and the report path.

    ``out`` defaults to ``$BRAINLID_HOME/demo/output``; the demo's results go to a store of
    their own there (``results.sqlite``), never into the main results store, because they are
    synthetic. ``progress``: a bar (or spinner) per stage on stderr; None shows it on a terminal
    outside CI (:func:`brainlid._progress.progress_wanted`); the ``log`` lines come either way.
    """
    t_start = time.perf_counter()
    home = Path(home) if home is not None else brainlid_home()
    out = Path(out) if out is not None else home / "demo" / "output"
    out.mkdir(parents=True, exist_ok=True)
    timings = {}
    log("[1/4] model zoo (trained once, cached under $BRAINLID_HOME)")
    t = time.perf_counter()
    zoo = train_zoo(home, seed=seed, log=log, progress=progress)
    timings["zoo"] = time.perf_counter() - t
    log("[2/4] synthetic NSD-format subjects (SYNTHETIC data), written and loaded through the NSD loader")
    t = time.perf_counter()
    with Stage("writing synthetic subjects", enabled=progress):
        root = write_synthetic_nsd(home / "demo" / "nsd-synthetic", seed=seed)
        benches = _register_benchmarks(root)
    timings["data"] = time.perf_counter() - t
    log(f"[3/4] scoring {len(zoo)} models + baselines on {len(benches)} benchmarks")
    t = time.perf_counter()
    models = dict(zip(zoo["model"], zoo["spec"]))
    layers = {m: zoo_mod.layers_of(m) for m in zoo["model"]}
    with Stage("scoring", total=len(benches) * n_extractions(models.values()), enabled=progress) as stage:
        res = score(models, benches, layers=layers, out=out, store=out / "results.sqlite", if_exists="replace",
                    batch_size=256, extract_kwargs={"progress": False}, mm_metrics=("mutual_knn", "cka"), return_result=True,
                    extract_fn=counting_extract(stage))
    timings["score"] = time.perf_counter() - t
    log("[4/4] across-model analysis, figures, report")
    t = time.perf_counter()
    with Stage("analysis, figures, report", enabled=progress):
        analysis = _analyse(res, root, benches, models, zoo, out, log)
    timings["analysis"] = time.perf_counter() - t
    summary = summary_table(res.scores, res.geometry, zoo)
    timings["total"] = time.perf_counter() - t_start
    return DemoResult(summary, res.scores, res.geometry, analysis, zoo, out, analysis.files["report"], timings)


def n_extractions(specs) -> int:
    """Feature extractions :func:`brainlid.scoring.serial.score` runs per benchmark for these specs with
    the default baselines: each model and, where the spec allows one, its random-weights twin."""
    return sum(1 + (random_weights_spec(s) is not None) for s in specs)


def counting_extract(stage, extract_fn=None):
    """``extract_fn`` (default :func:`brainlid.features.extract`) that advances ``stage`` once per
    (model, benchmark) cell scored: when the next extraction starts the previous cell is done (the
    last one ends with the stage). The bar's detail names the model being scored."""
    if extract_fn is None:
        extract_fn = extract
    calls = [0]

    def run(spec, stimuli, **kw):
        _, name, weights = parse_spec(spec) if isinstance(spec, str) else ("", type(spec).__name__, None)
        label = name.rsplit(":", 1)[-1] + (" (random weights)" if weights and weights.startswith("random") else "")
        stage.advance(1 if calls[0] else 0, detail=label)
        calls[0] += 1
        return extract_fn(spec, stimuli, **kw)

    return run


def _analyse(res, root: Path, benches, models: dict, zoo: pd.DataFrame, out: Path, log):
    """Stage 4: the brain map figure, then the across-model analysis and its report."""
    extra = {}
    try:
        extra = _brain_map(res.scores, root, benches[0], models, out / "analysis" / "figures")
    except Exception as exc:  # a figure must not sink the demo; say why
        log(f"  (brain map skipped: {exc})")
    gen = pd.DataFrame({"model": zoo["model"], "top1": zoo["test_acc"], "n_params": zoo["params"]})
    notes = [
        "SYNTHETIC BRAIN DATA: the 'subjects' are NSD-format files generated by brainlid's fixture writer from a "
        "documented generative model (digit class + pixel principal components → random voxel read-outs + noise). "
        "They are not measurements of any brain.",
        "Stimuli: scikit-learn's handwritten digits. Models: 12 small networks trained here on the digits; "
        "'generalization' is their held-out digit accuracy.",
        f"The headline K = {K_HEADLINE} was fixed before running; the r-vs-K curve is exploratory.",
    ]
    return analyze(res.scores, res.geometry, gen, k=K_HEADLINE, layer="last", out=out / "analysis",
                   n_boot=1000, n_perm=2000, title="brainlid demo — digits, a 12-model zoo, SYNTHETIC NSD-format brains",
                   notes=notes, metric="encoding_r2", extra_figures=extra)


def _brain_map(scores: pd.DataFrame, root: Path, bench, models: dict, folder: Path) -> dict:
    """Glass-brain map of per-voxel test R² of the best zoo model (subject 1, its selected layer)."""
    enc = scores[(scores["benchmark"] == bench.id) & (scores["split"] == "test") & (scores["metric"] == "encoding_r2")
                 & scores["selected"].astype(bool) & scores["model"].isin(list(models))]
    best = enc.sort_values("value", ascending=False).iloc[0]
    stimuli, brain = load_benchmark_data(bench)
    feats = extract(models[best["model"]], stimuli, [best["layer"]], progress=False)
    _, r2 = unit_scores_for_layer(feats[best["layer"]], feats.stimulus_ids, brain, bench)
    ref = nib.load(get_card("nsd").file(root, "ncsnr_nifti", subject=1, space="func1pt8mm", beta="betas_fithrf_GLMdenoise_RR"))
    coords = brain.units[["i", "j", "k"]].to_numpy()
    png = brain_map(r2, coords=coords, affine=ref.affine, shape=ref.shape[:3], threshold=0.05,
                    title=f"SYNTHETIC subj01, test R², {best['model']}",
                    stem=folder / "brain_map_subj01")
    return {f"brain map: {best['model']} on synthetic subj01": png}


def summary_table(scores: pd.DataFrame, geometry: pd.DataFrame, zoo: pd.DataFrame) -> pd.DataFrame:
    """One row per zoo model with the columns of :data:`SUMMARY_COLUMNS`."""
    test = scores[scores["split"] == "test"]
    enc = test[(test["metric"] == "encoding_r2") & test["selected"].astype(bool) & (test["dataset"] == DEMO_DATASET)]
    rsa = test[(test["metric"] == "rsa_spearman") & (test["subject"] == "subj01")]
    mk = test[(test["metric"] == "mutual_knn") & ~test["roi"].str.contains("#|@|baseline:", regex=True)]
    rows = []
    for rec in zoo.itertuples(index=False):
        m = rec.model
        g = geometry[(geometry["model"] == m)]
        last = g.loc[g["layer_index"].astype(float).idxmax(), "layer"] if len(g) else None
        gl = g[g["layer"] == last]
        lid = gl[(gl["estimator"] == "mle") & (gl["K"] == K_HEADLINE)]["value"]
        pr = gl[gl["estimator"] == "participation_ratio"]["value"]
        e = enc[enc["model"] == m]
        r = rsa[(rsa["model"] == m) & (rsa["layer"] == last)]
        rows.append({
            "model": m, "params": int(rec.params), "train_n": int(rec.train_n), "test_acc": float(rec.test_acc),
            "lid_K20": float(lid.mean()) if len(lid) else np.nan, "pr": float(pr.mean()) if len(pr) else np.nan,
            "brain_r2": float(e["value"].mean()) if len(e) else np.nan,
            "brain_norm": float(e["normalised"].mean()) if len(e) else np.nan,
            "rsa": float(r["value"].mean()) if len(r) else np.nan,
            "mknn": float(mk[mk["model"] == m]["value"].mean()) if (mk["model"] == m).any() else np.nan,
        })
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
