"""Where the data came from: every row says ``real``, ``synthetic`` or ``unknown`` (issue 14, defect 8).

The marker comes from the dataset copy itself: the fixture writers mark their copies, the loaders
detect the mark, the runners copy it into every score and geometry row. Deleting the mark from a
copy makes the same files read as a real dataset; user-built data are ``unknown``.
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from brainlid.data import BrainData
from brainlid.data import fixtures
from brainlid.data.provenance import (SYNTHETIC_MARKER, TRUTH_DIR, check_data_source, data_source_of,
                                      detect_data_source)
from brainlid.errors import InputError
from brainlid.scoring import cell
from brainlid.scoring.benchmarks import load_benchmark_data

REAL_K92 = Path("/work/shared/realdata/k92")


def _unmark(root: Path) -> None:
    """Turn a fixture copy into what a real copy looks like to the loaders: no marker, no truth folder."""
    (root / SYNTHETIC_MARKER).unlink()
    shutil.rmtree(root / TRUTH_DIR)


def _load_source(name: str, root: Path) -> str:
    from brainlid.data import algonauts, algonauts2019, nsd, things_eeg2, things_fmri

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "nsd":
            return data_source_of(nsd.load(root, subject=1, images=False).brain)
        if name == "algonauts":
            return data_source_of(algonauts.load(root, subject=1).brain)
        if name == "things_fmri":
            return data_source_of(things_fmri.load(root, subject=1).brain)
        if name == "things_eeg2":
            return data_source_of(things_eeg2.load(root, subject=1, split="test").brain)
        ds = algonauts2019.load(root)
        srcs = {data_source_of(r) for r in ds.rdms.values()} | {data_source_of(ds)}
        assert len(srcs) == 1, srcs
        return srcs.pop()


_WRITERS = {
    "nsd": lambda r: fixtures.write_nsd(r, spaces=("func1pt8mm",)),
    "algonauts": lambda r: fixtures.write_algonauts(r),
    "things_fmri": lambda r: fixtures.write_things_fmri(r),
    "things_eeg2": lambda r: fixtures.write_things_eeg2(r),
    "algonauts2019": lambda r: fixtures.write_algonauts2019(r, image_set="92", n_images=12, n_subjects=2, image_size=16),
}


@pytest.mark.parametrize("name", list(_WRITERS))
def test_every_loader_reads_the_fixture_mark_and_its_absence(name, tmp_path):
    root = tmp_path / name
    _WRITERS[name](root)
    assert (root / SYNTHETIC_MARKER).is_file()
    assert _load_source(name, root) == "synthetic"
    _unmark(root)
    assert _load_source(name, root) == "real"


@pytest.mark.parametrize("name, bid", [("nsd", "nsd.subj01.nsdgeneral.rsa"),
                                       ("algonauts", "algonauts2023.subj01.lh.encoding"),
                                       ("things_fmri", "things_fmri.sub-01.V1.rsa"),
                                       ("things_eeg2", "things_eeg2.sub-01.posterior.encoding"),
                                       ("things_eeg2", "things_eeg2.sub-01.posterior.rsa")])
def test_benchmark_loaders_keep_the_source(name, bid, tmp_path):
    """The built-in benchmarks' loaders (which re-assemble or restrict the loaded data) keep the mark."""
    root = tmp_path / name
    _WRITERS[name](root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, brain = load_benchmark_data(bid, root)
    assert data_source_of(brain) == "synthetic"


def test_old_fixture_copies_without_the_marker_file_are_still_synthetic(tmp_path):
    """Copies written before the marker existed hold only the truth folder: still synthetic."""
    root = fixtures.write_nsd(tmp_path / "nsd", spaces=("func1pt8mm",))
    (root / SYNTHETIC_MARKER).unlink()
    assert detect_data_source(root) == "synthetic"
    shutil.rmtree(root / TRUTH_DIR)
    assert detect_data_source(root) == "real"


def test_user_data_are_unknown_and_the_source_survives_selection_and_saving(tmp_path):
    rng = np.random.default_rng(0)
    b = BrainData.from_arrays(rng.standard_normal((10, 4)), np.arange(10))
    assert data_source_of(b) == "unknown"
    b = BrainData.from_arrays(rng.standard_normal((10, 4)), np.arange(10), meta={"data_source": "real"},
                              splits={"train": np.arange(6)})
    assert data_source_of(b.select(units=[0, 1]).split("train")) == "real"
    assert data_source_of(BrainData.load(b.save(tmp_path / "b.h5"))) == "real"
    with pytest.raises(InputError, match="data_source must be one of"):
        data_source_of(BrainData.from_arrays(np.ones((3, 2)), np.arange(3), meta={"data_source": "fake"}))
    assert check_data_source("") == "unknown" and check_data_source(None) == "unknown"


@pytest.fixture(scope="module")
def nsd_copy(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov") / "nsd"
    return fixtures.write_nsd(root, spaces=("func1pt8mm",), n_images=40, n_shared=10)


def _score_nsd(root, bid):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, brain = load_benchmark_data(bid, root)
        rng = np.random.default_rng(1)
        X = rng.standard_normal((brain.n_stimuli, 8)).astype(np.float32)
        return cell.score_features({"a": X, "b": X[:, :4]}, brain.stimulus_ids, bid, brain, model="m")


@pytest.mark.parametrize("bid", ["nsd.subj01.nsdgeneral.encoding", "nsd.subj01.nsdgeneral.rsa"])
def test_fixture_copy_scored_through_the_api_is_synthetic_on_every_row(nsd_copy, tmp_path, bid):
    """The defect: a fixture copy scored under a real benchmark id was indistinguishable from real NSD."""
    scores, geom = _score_nsd(nsd_copy, bid)
    assert len(scores) and len(geom)
    assert set(scores["data_source"]) == {"synthetic"} and set(geom["data_source"]) == {"synthetic"}
    assert set(scores["split"]) == {"val", "test"} and (scores["benchmark_version"] == 2).all()
    # the same files without the fixture mark: a real dataset layout → "real"
    copy = tmp_path / "copy"
    shutil.copytree(nsd_copy, copy)
    _unmark(copy)
    scores2, geom2 = _score_nsd(copy, bid)
    assert set(scores2["data_source"]) == {"real"} and set(geom2["data_source"]) == {"real"}
    # nothing else changed: the mark is provenance, not data
    pd.testing.assert_frame_equal(scores.drop(columns="data_source"), scores2.drop(columns="data_source"))


def test_rdm_benchmark_rows_carry_the_source(tmp_path):
    from brainlid.scoring.benchmarks import load_benchmark_rdms
    from brainlid.scoring.cell import score_rdm_features

    root = fixtures.write_algonauts2019(tmp_path / "a19", image_set="92", n_images=12, n_subjects=3, image_size=16)
    rdms = load_benchmark_rdms("algonauts2019.92.IT.rsa", root)
    X = np.random.default_rng(0).standard_normal((rdms.n_stimuli, 5)).astype(np.float32)
    scores, geom = score_rdm_features({"l": X}, rdms.stimulus_ids, "algonauts2019.92.IT.rsa", rdms, model="m")
    assert set(scores["split"]) == {"val", "test", "all"}
    assert set(scores["data_source"]) == {"synthetic"} and set(geom["data_source"]) == {"synthetic"}


@pytest.mark.skipif(not REAL_K92.is_dir(), reason="real k92 data not available")
def test_real_k92_rows_are_real():
    from brainlid.scoring.benchmarks import load_benchmark_rdms
    from brainlid.scoring.cell import score_rdm_features

    rdms = load_benchmark_rdms("k92.human.IT.rsa", REAL_K92)
    X = np.random.default_rng(0).standard_normal((rdms.n_stimuli, 5)).astype(np.float32)
    scores, _ = score_rdm_features({"l": X}, rdms.stimulus_ids, "k92.human.IT.rsa", rdms, model="m", geometry=False)
    assert set(scores["data_source"]) == {"real"}


def test_model_model_rows_take_the_stimuli_source():
    rng = np.random.default_rng(0)
    feats = {"a": rng.standard_normal((30, 6)), "b": rng.standard_normal((30, 5))}
    rows = cell.model_model_rows(feats, stimulus_set="s", metrics=("cka",), data_source="synthetic")
    assert {r["data_source"] for r in rows} == {"synthetic"}
    assert {r["data_source"] for r in cell.model_model_rows(feats, stimulus_set="s", metrics=("cka",))} == {"unknown"}


def test_report_shows_the_source_per_benchmark(tmp_path):
    from brainlid.report import data_source_banners, render_report

    rows = pd.DataFrame({"benchmark": ["nsd.subj01.EBA.encoding", "k92.human.IT.rsa", "mine.s.all.encoding",
                                       "models.x.cka"],
                         "dataset": ["nsd", "k92", "mine", "models"],
                         "data_source": ["synthetic", "real", "unknown", "synthetic"]})
    banners = data_source_banners(rows)
    assert len(banners) == 2
    syn, unk = banners
    assert syn.startswith("SYNTHETIC DATA") and "nsd.subj01.EBA.encoding" in syn and "k92" not in syn
    assert unk.startswith("DATA SOURCE UNKNOWN") and "mine.s.all.encoding" in unk
    assert "models.x.cka" not in " ".join(banners)  # model–model rows are not brain data
    assert data_source_banners(rows[rows.data_source == "real"]) == []
    # a table from before the column: unknown
    assert data_source_banners(rows.drop(columns="data_source"))[0].startswith("DATA SOURCE UNKNOWN")
    doc = render_report("t", [], banners=banners)
    assert doc.count("class='banner'") == 2 and "SYNTHETIC DATA" in doc
