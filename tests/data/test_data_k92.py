"""k92 loader: a small hand-written copy in the rsatoolbox-demo format, and the real files when present."""

from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from brainlid.data import k92
from brainlid.data._matfile import write_v5
from brainlid.errors import DatasetNotFoundError, InputError, StimulusMismatchError
from support import REALDATA

K92 = REALDATA / "k92"

CATS = ["human bodypart", "human face", "nonhuman bodypart", "nonhuman face", "natural inanimate", "artificial inanimate"]
LABELS = ["animate", "inanim", "human", "nonhumani", "body", "face", "natObj", "artiObj", "rand24", "rand48", "other48", "monkeyape"]


def _struct(shape, fields):
    arr = np.empty(shape, dtype=[(f, object) for f in fields])
    return arr


def write_small_k92(root: Path, n: int = 12, seed: int = 0, *, asym_model: bool = False, n_brain: int | None = None):
    """Three v5 files with the real variable names, struct layouts and dtypes, over n images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cat = np.arange(n) * len(CATS) // n
    objs = _struct((1, n), ["category", "human", "face", "animal", "natural", "image"])
    imgs = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    for i in range(n):
        c = CATS[cat[i]]
        objs[0, i] = (c, np.uint8("human" in c and "non" not in c), np.uint8("face" in c), np.uint8(cat[i] < 4),
                      np.uint8(cat[i] != 5), imgs[i])
    vec = np.zeros((n, 12), np.uint8)
    vec[:, 0] = cat < 4
    vec[:, 1] = cat >= 4
    labels = np.empty((1, 12), dtype=object)
    labels[0, :] = LABELS
    X = rng.standard_normal((n, 5))
    fig1 = _struct((1, 2), ["name", "color", "RDM"])
    fig1[0, 0] = ("mIT_674neurons", np.zeros((1, 3), np.uint8), pdist(X, "correlation")[None])
    fig1[0, 1] = ("hITvisStim_316vx", np.zeros((1, 3), np.uint8), pdist(X + rng.standard_normal(X.shape), "correlation")[None])
    write_v5(root / "Kriegeskorte_Neuron2008_supplementalData.mat",
             {"stimuli_92objs": objs, "categoryVectors": vec, "categoryLabels": labels, "RDMs_mIT_hIT_fig1": fig1})
    nb = n if n_brain is None else n_brain
    rdms = _struct((1, 4, 2), ["RDM", "name", "color"])
    truth = np.empty((4, 2, nb, nb), np.float32)
    for s, subj in enumerate(["BE", "KO", "SN", "TI"]):
        for t in range(2):
            truth[s, t] = squareform(pdist(X[:nb] + rng.standard_normal((nb, 5)), "correlation"))
            rdms[0, s, t] = (truth[s, t], f"hIT | {subj} | Session: {t + 1}", np.zeros((1, 3), np.uint8))
    write_v5(root / "92_brainRDMs.mat", {"RDMs": rdms})
    models = _struct((1, 2), ["RDM", "color", "name"])
    anim = (cat[:, None] < 4) != (cat[None, :] < 4)
    m2 = squareform(pdist(X, "euclidean"))
    if asym_model:
        m2[0, 1] += 1.0
    models[0, 0] = (anim.astype(np.uint8), np.zeros((1, 3), np.uint8), "animacy")
    models[0, 1] = (m2, np.zeros((1, 3), np.uint8), "V1")
    write_v5(root / "92_modelRDMs.mat", {"Models": models})
    return truth, imgs, X


def test_small_copy_loads(tmp_path):
    truth, imgs, X = write_small_k92(tmp_path)
    ds = k92.load(tmp_path)
    assert list(ds.rdms) == ["human.IT", "monkey.IT", "human.IT.fig1"]
    h = ds["human.IT"]
    assert h.subjects == ["BE", "KO", "SN", "TI"] and h.sessions == ["ses-1", "ses-2"]
    np.testing.assert_allclose(h.square("SN", "ses-2"), truth[2, 1], atol=1e-6)
    assert h.stimuli is ds.stimuli and list(ds.stimuli.ids[:2]) == ["k92_01", "k92_02"]
    np.testing.assert_array_equal(ds.stimuli.image(3), imgs[3])
    meta = ds.stimuli.metadata
    assert meta.category[0] == "human bodypart" and meta.animate.sum() == (np.arange(12) * 6 // 12 < 4).sum()
    np.testing.assert_allclose(ds["monkey.IT"].mean_rdm(), pdist(X, "correlation"), rtol=1e-6)
    assert set(ds.models) == {"animacy", "V1"} and ds.models["V1"].dtype == np.float32
    np.testing.assert_allclose(ds.models["V1"], pdist(X), rtol=1e-6)


def test_asymmetric_model_rdm_rejected(tmp_path):
    write_small_k92(tmp_path, asym_model=True)
    with pytest.raises(InputError, match="model RDM 'V1' are not symmetric"):
        k92.load(tmp_path)


def test_brain_rdm_count_mismatch_named(tmp_path):
    write_small_k92(tmp_path, n=12, n_brain=10)
    with pytest.raises(StimulusMismatchError, match="over 10 stimuli but there are 12 images"):
        k92.load(tmp_path)


def test_missing_file_named_with_card(tmp_path):
    write_small_k92(tmp_path)
    (tmp_path / "92_modelRDMs.mat").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"92_modelRDMs.mat.*'k92'.*brainlid datasets"):
        k92.load(tmp_path)
    df = k92.check(tmp_path)
    assert dict(zip(df.item, df.status)) == {"supplemental": "present", "brain_rdms": "present", "model_rdms": "missing"}


def test_default_root_from_env(tmp_path, monkeypatch):
    write_small_k92(tmp_path / "k92")
    monkeypatch.setenv("BRAINLID_DATA", str(tmp_path))
    assert len(k92.load().stimuli) == 12


@pytest.mark.skipif(not K92.is_dir(), reason=f"real data not found at {K92} (set BRAINLID_REALDATA)")
def test_real_files_load():
    ds = k92.load(K92)
    assert len(ds.stimuli) == 92 and ds.stimuli.image(0).shape == (175, 175, 3)
    counts = ds.stimuli.metadata.category.value_counts().to_dict()
    assert counts == {"natural inanimate": 23, "artificial inanimate": 21, "human bodypart": 12, "human face": 12,
                      "nonhuman bodypart": 12, "nonhuman face": 12}
    h = ds["human.IT"]
    assert (h.n_subjects, h.n_sessions, h.n_pairs) == (4, 2, 4186)
    assert list(ds.models) == list(k92.MODEL_NAMES)
    assert (k92.check(K92).status == "present").all()


def test_rdm_benchmark_ids(tmp_path):
    from brainlid.alignment.brain_rdms import score_brain_rdms
    from brainlid.scoring.benchmarks import RDM_BENCHMARKS, load_benchmark_rdms

    truth, _, X = write_small_k92(tmp_path)
    assert "k92.human.IT.rsa" in RDM_BENCHMARKS and "algonauts2019.92.IT.rsa" in RDM_BENCHMARKS
    rdms = load_benchmark_rdms("k92.human.IT.rsa", root=tmp_path)
    assert rdms.subjects == ["BE", "KO", "SN", "TI"] and rdms.stimuli is not None
    df = score_brain_rdms({"truth": X}, rdms.stimuli.ids, rdms)
    assert df[df.subject == "mean"].value.item() > 0.3
    assert load_benchmark_rdms("k92.monkey.IT.rsa", root=tmp_path).n_subjects == 1
    with pytest.raises(InputError, match="did you mean k92.human.IT.rsa"):
        load_benchmark_rdms("k92.human.it.rsa", root=tmp_path)
