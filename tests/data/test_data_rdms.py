"""BrainRDMs: validation (square, symmetric, zero diagonal, counts), views, id selection, RSA scoring."""

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform
from scipy.stats import spearmanr

from brainlid.alignment.brain_rdms import score_brain_rdms, score_model_rdms
from brainlid.alignment.ceiling import rdm_session_reliability
from brainlid.data import StimulusSet
from brainlid.data.rdms import BrainRDMs, RDMDataset, check_square_rdms, condensed_positions, condensed_subset
from brainlid.errors import InputError, StimulusMismatchError


def _square_stack(rng, n_sub=3, n_ses=2, n=10, p=6):
    X = rng.standard_normal((n, p))
    out = np.empty((n_sub, n_ses, n, n))
    for s in range(n_sub):
        for t in range(n_ses):
            out[s, t] = squareform(pdist(X + 0.5 * rng.standard_normal(X.shape), "correlation"))
    return X, out


def test_from_square_condensed_matches_squareform():
    rng = np.random.default_rng(0)
    _, sq = _square_stack(rng)
    b = BrainRDMs.from_square(sq, [f"s{i}" for i in range(10)], roi="IT", dataset="toy")
    assert b.rdms.shape == (3, 2, 45) and b.rdms.dtype == np.float32
    np.testing.assert_allclose(b.rdms[1, 0], squareform(sq[1, 0], checks=False), rtol=1e-6)
    np.testing.assert_allclose(b.square(1, 0), sq[1, 0], atol=1e-6)
    np.testing.assert_allclose(b.subject_rdms()[2], squareform(sq[2].mean(0), checks=False), rtol=1e-5)
    np.testing.assert_allclose(b.mean_rdm(), squareform(sq.mean((0, 1)), checks=False), rtol=1e-5)
    assert b.subjects == ["sub-01", "sub-02", "sub-03"] and b.sessions == ["ses-01", "ses-02"]


@pytest.mark.parametrize("shape", [(10, 10), (4, 10, 10)])
def test_from_square_lower_dims(shape):
    rng = np.random.default_rng(1)
    _, sq = _square_stack(rng, n_sub=4, n_ses=1)
    a = sq[:, 0] if len(shape) == 3 else sq[0, 0]
    b = BrainRDMs.from_square(a)
    assert b.rdms.shape == ((4 if len(shape) == 3 else 1), 1, 45)
    np.testing.assert_array_equal(b.stimulus_ids, np.arange(10))


def test_rejects_not_square():
    with pytest.raises(InputError, match="not square.*9 x 10"):
        check_square_rdms(np.zeros((2, 9, 10)))


def test_rejects_asymmetric_with_location():
    rng = np.random.default_rng(2)
    _, sq = _square_stack(rng, n_sub=2, n_ses=1)
    bad = sq[:, 0].copy()
    bad[1, 2, 5] += 0.3
    with pytest.raises(InputError, match=r"\(RDM BE\) are not symmetric: D\[2, 5\]"):
        check_square_rdms(bad, labels=(["AA", "BE"],))


def test_rejects_nonzero_diagonal():
    rng = np.random.default_rng(3)
    _, sq = _square_stack(rng, n_sub=1, n_ses=1)
    bad = sq[0, 0].copy()
    bad[4, 4] = 0.2
    with pytest.raises(InputError, match=r"non-zero diagonal: D\[4, 4\] = 0.2"):
        BrainRDMs.from_square(bad)


def test_rejects_nan():
    rng = np.random.default_rng(3)
    _, sq = _square_stack(rng, n_sub=1, n_ses=1)
    bad = sq[0, 0].copy()
    bad[1, 3] = bad[3, 1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        BrainRDMs.from_square(bad)


def test_tiny_float_asymmetry_is_accepted():
    rng = np.random.default_rng(4)
    _, sq = _square_stack(rng, n_sub=1, n_ses=1)
    a = sq[0, 0].astype(np.float32)
    a[0, 1] += 1e-7
    BrainRDMs.from_square(a)  # within the relative tolerance


def test_count_mismatch_ids_and_images_named():
    rng = np.random.default_rng(5)
    _, sq = _square_stack(rng, n_sub=1, n_ses=1)
    with pytest.raises(StimulusMismatchError, match="over 10 stimuli.*9 stimulus ids"):
        BrainRDMs.from_square(sq[0, 0], np.arange(9))
    stim = StimulusSet.from_array(np.zeros((12, 4, 4, 3), np.uint8))
    with pytest.raises(StimulusMismatchError, match="over 10 stimuli but the stimulus set .* has 12 images"):
        BrainRDMs.from_square(sq[0, 0], np.arange(10), stimuli=stim)
    stim10 = StimulusSet.from_array(np.zeros((10, 4, 4, 3), np.uint8), ids=np.arange(10)[::-1])
    with pytest.raises(StimulusMismatchError, match="other ids"):
        BrainRDMs.from_square(sq[0, 0], np.arange(10), stimuli=stim10)


def test_bad_condensed_length():
    with pytest.raises(InputError, match="not n\\(n-1\\)/2"):
        BrainRDMs(np.zeros((1, 1, 44)), np.arange(10))


def test_condensed_positions_matches_square_indexing():
    rng = np.random.default_rng(6)
    n = 13
    d = pdist(rng.standard_normal((n, 3)))
    pos = np.array([7, 2, 11, 0, 5])
    expect = squareform(squareform(d)[np.ix_(pos, pos)], checks=False)
    np.testing.assert_array_equal(d[condensed_positions(pos, n)], expect)
    np.testing.assert_array_equal(condensed_subset(d, pos), expect)
    with pytest.raises(InputError, match="duplicates"):
        condensed_positions([1, 1, 2], n)


def test_select_by_ids_reorders_and_names_missing():
    rng = np.random.default_rng(7)
    _, sq = _square_stack(rng)
    ids = np.array([f"s{i}" for i in range(10)])
    stim = StimulusSet.from_array(rng.integers(0, 255, (10, 4, 4, 3), dtype=np.uint8), ids=ids)
    b = BrainRDMs.from_square(sq, ids, stimuli=stim, subjects=["A", "B", "C"])
    want = ["s9", "s0", "s4", "s5"]
    sel = b.select(want, subjects=["C", "A"])
    pos = [9, 0, 4, 5]
    np.testing.assert_allclose(sel.square("C", 1), sq[2, 1][np.ix_(pos, pos)], atol=1e-6)
    assert list(sel.stimuli.ids) == want and sel.subjects == ["C", "A"]
    np.testing.assert_array_equal(sel.stimuli.image(0), stim.image(9))
    with pytest.raises(StimulusMismatchError, match="not in the"):
        b.select(["s1", "s2", "s3", "zz"])
    with pytest.raises(InputError, match="unknown subject"):
        b.select(subjects=["Q"])


def test_session_reliability_is_spearman_between_sessions():
    rng = np.random.default_rng(8)
    _, sq = _square_stack(rng)
    b = BrainRDMs.from_square(sq)
    rel = rdm_session_reliability(b)
    assert list(rel.columns) == ["subject", "session_a", "session_b", "method", "r"]
    for s in range(3):
        ref = spearmanr(squareform(sq[s, 0], checks=False), squareform(sq[s, 1], checks=False))[0]
        assert rel.r[s] == pytest.approx(ref, abs=1e-5)


def test_rdm_dataset_unpacks_and_indexes():
    rng = np.random.default_rng(9)
    _, sq = _square_stack(rng)
    b = BrainRDMs.from_square(sq, roi="IT")
    stim = StimulusSet.from_array(np.zeros((10, 2, 2, 3), np.uint8))
    ds = RDMDataset(stim, {"IT": b})
    s, r = ds
    assert s is stim and r["IT"] is b and ds["IT"] is b
    with pytest.raises(InputError, match="no brain RDMs called 'EVC'"):
        ds["EVC"]


# ------------------------------------------------------------------------------------ scoring
def _brain_from_features(rng, F, n_sub=4, noise=1.0):
    rdms = []
    for _ in range(n_sub):
        R = F @ rng.standard_normal((F.shape[1], 30)) + noise * rng.standard_normal((F.shape[0], 30))
        rdms.append(squareform(pdist(R, "correlation")))
    return np.stack(rdms)


def test_score_brain_rdms_against_brute_force():
    rng = np.random.default_rng(10)
    n = 24
    F = rng.standard_normal((n, 5))
    sq = _brain_from_features(rng, F)
    ids = np.array([f"im{i:02d}" for i in range(n)])
    brain = BrainRDMs.from_square(sq, ids, roi="IT", dataset="toy")
    feats = {"good": F, "bad": rng.standard_normal((n, 5))}
    perm = rng.permutation(n)  # features in another order: the join must use the ids
    df = score_brain_rdms({k: v[perm] for k, v in feats.items()}, ids[perm], brain)
    assert list(df.columns) == ["layer", "subject", "dataset", "roi", "metric", "rdm_method", "compare", "value",
                                "ceiling", "ceiling_lower", "ceiling_upper", "ceiling_method", "normalised",
                                "n_stimuli", "n_subjects", "ceiling_note", "brainlid_version"]
    assert len(df) == 2 * (4 + 1)
    subj = np.stack([squareform(m, checks=False) for m in sq])
    # independent float64 reference: scipy pdist + spearmanr; LOSO ceiling by hand with rank pooling
    from scipy.stats import rankdata
    ranks = np.stack([rankdata(v) for v in subj])
    upper = np.mean([spearmanr(ranks.mean(0), subj[s])[0] for s in range(4)])
    lower = np.mean([spearmanr(np.delete(ranks, s, 0).mean(0), subj[s])[0] for s in range(4)])
    # group-mean ceiling by hand: the 3 ways to split 4 subjects into pairs (each ordered pair twice), plain
    # means, Spearman between the half-group RDMs, Spearman–Brown stepped up by k = 4/2 = 2, as a correlation
    splits = [((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2))]
    r_half = np.mean([spearmanr(subj[list(a)].mean(0), subj[list(b)].mean(0))[0] for a, b in splits])
    group_ceiling = np.sqrt(2 * r_half / (1 + r_half))
    for layer, X in feats.items():
        model = pdist(X, "correlation")
        rows = df[df.layer == layer].set_index("subject")
        for s in range(4):
            row = rows.loc[f"sub-{s + 1:02d}"]
            assert row["value"] == pytest.approx(spearmanr(model, subj[s])[0], abs=1e-5)
            assert row["ceiling_lower"] == pytest.approx(lower, abs=1e-6)
            assert row["ceiling_upper"] == pytest.approx(upper, abs=1e-6)
            assert row["ceiling"] == pytest.approx(np.sqrt(lower * upper), abs=1e-6)
            assert row["ceiling_method"] == "loso-geometric-mean"
        mean = rows.loc["mean"]
        assert mean["value"] == pytest.approx(spearmanr(model, subj.mean(0))[0], abs=1e-5)
        assert mean["ceiling"] == pytest.approx(group_ceiling, abs=1e-6)
        assert mean["ceiling_method"] == "group-split-half"
        assert np.isnan(mean["ceiling_lower"]) and np.isnan(mean["ceiling_upper"])
        # whether these ceilings calibrate (true model → 1) is tested against simulated truth in
        # tests/test_calibration_rsa.py
    good = df[(df.layer == "good") & (df.subject == "mean")].value.item()
    bad = df[(df.layer == "bad") & (df.subject == "mean")].value.item()
    assert good > 0.5 > bad
    assert lower < upper


def test_score_brain_rdms_partial_overlap_uses_shared_ids():
    rng = np.random.default_rng(11)
    n = 20
    F = rng.standard_normal((n, 4))
    sq = _brain_from_features(rng, F, n_sub=3)
    brain = BrainRDMs.from_square(sq, np.arange(n))
    keep = np.arange(3, 17)
    df = score_brain_rdms({"f": F[keep]}, keep, brain)
    sub = sq[:, keep][:, :, keep]
    ref = spearmanr(pdist(F[keep], "correlation"), squareform(sub.mean(0), checks=False))[0]
    assert df[df.subject == "mean"].value.item() == pytest.approx(ref, abs=1e-5)
    assert (df.n_stimuli == keep.size).all()
    with pytest.raises(StimulusMismatchError):
        score_brain_rdms({"f": F[:2]}, [100, 101], brain)
    with pytest.raises(InputError, match="rows per stimulus id"):
        score_brain_rdms({"f": F[:5]}, np.arange(6), brain)


def test_single_subject_has_no_ceiling_but_a_score():
    rng = np.random.default_rng(12)
    F = rng.standard_normal((15, 3))
    brain = BrainRDMs.from_square(_brain_from_features(rng, F, n_sub=1)[0])
    df = score_model_rdms({"m": pdist(F, "correlation")}, brain)
    assert np.isfinite(df.value).all()
    assert df.ceiling_upper.isna().all() and df.ceiling_note.str.contains("single subject").all()
    assert df.ceiling.isna().all() and df.normalised.isna().all() and (df.ceiling_method == "").all()
    with pytest.raises(InputError, match="pairs"):
        score_model_rdms({"m": np.zeros(10)}, brain)
    assert isinstance(df, pd.DataFrame)
