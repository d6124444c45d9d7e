"""THINGS images: ids stable across fMRI, EEG2, EEG1 and MEG spellings; StimulusSet over the image tree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainlid.data import things_eeg2, things_fmri, things_images
from brainlid.data.fixtures import write_things_eeg2, write_things_fmri, write_things_images
from brainlid.errors import DatasetNotFoundError


@pytest.mark.parametrize(
    "name",
    [
        "dog_12s",
        "dog_12s.jpg",  # THINGS-fMRI StimulusMetadata.stimulus
        "dog/dog_12s.jpg",  # THINGS-fMRI betas_vol conditions, events.tsv file_path
        "images/dog/dog_12s.jpg",  # THINGS image_paths.csv
        "stimuli\\dog\\dog_12s.jpg",  # THINGS-EEG1 events.tsv (Windows path)
        "  Images/dog/dog_12s.JPG ",
    ],
)
def test_image_id_of_every_spelling(name):
    assert things_images.image_id(name) == "dog_12s"


def test_stimulus_set_over_the_tree(tmp_path):
    write_things_images(tmp_path, concepts=["dog", "aardvark", "chicken_wire"], n_per_concept=2)
    s = things_images.load_stimuli(tmp_path)
    listed = pd.read_csv(tmp_path / "Metadata/Image-specific/image_paths.csv", header=None)[0]
    # order and ids follow image_paths.csv; ids are file stems
    np.testing.assert_array_equal(s.ids, [p.rsplit("/", 1)[1][:-4] for p in listed])
    concepts = pd.read_csv(tmp_path / "Metadata/Concept-specific/things_concepts.tsv", sep="\t")
    index = dict(zip(concepts["uniqueID"], range(1, len(concepts) + 1)))
    np.testing.assert_array_equal(s.metadata["concept_index"], [index[c] for c in s.metadata["concept"]])
    assert set(s.metadata["word"]) == {"dog", "aardvark", "chicken wire"}
    img = s.image(3)
    with Image.open(tmp_path / "Images" / s.metadata["concept"][3] / f"{s.ids[3]}.jpg") as im:
        np.testing.assert_array_equal(img, np.asarray(im.convert("RGB")))
    sub = things_images.load_stimuli(tmp_path, concepts=["aardvark"])
    assert list(sub.ids) == [i for i in s.ids if i.startswith("aardvark")]
    stimuli, brain = things_images.load(tmp_path)
    assert brain is None and len(stimuli) == 6
    # without the metadata the folders still give the set (concept index unknown)
    for p in (tmp_path / "Metadata").rglob("*.*"):
        p.unlink()
    bare = things_images.load_stimuli(tmp_path)
    assert sorted(bare.ids) == sorted(s.ids) and (bare.metadata["concept_index"] == -1).all()
    with pytest.raises(DatasetNotFoundError, match="things_images"):
        things_images.load_stimuli(tmp_path / "nowhere")


def test_ids_join_across_datasets(tmp_path):
    """The same THINGS image has the same id in THINGS images, THINGS-fMRI and THINGS-EEG2."""
    write_things_fmri(tmp_path / "fmri", n_train_concepts=4, n_sessions=2, n_test=2, images_root=tmp_path / "things", betas_vol=False)
    write_things_eeg2(tmp_path / "eeg2", n_train_concepts=4, n_train_per_concept=2, n_test=2, raw=False)
    things = things_images.load_stimuli(tmp_path / "things")
    fmri_stim, fmri = things_fmri.load(tmp_path / "fmri", images=tmp_path / "things")
    eeg_stim, eeg = things_eeg2.load(tmp_path / "eeg2", split="train")
    assert set(fmri.stimulus_ids) <= set(things.ids)
    shared = np.intersect1d(fmri.stimulus_ids, eeg.stimulus_ids)
    assert shared.size >= 1  # e.g. aardvark_01b: fixture exemplar 1 of the first concepts in both
    i_t, i_f = things.positions_of(shared), fmri_stim.positions_of(shared)
    np.testing.assert_array_equal(things.ids[i_t], fmri_stim.ids[i_f])
    np.testing.assert_array_equal(things.image(int(i_t[0])), fmri_stim.image(int(i_f[0])))


def test_check(tmp_path):
    write_things_images(tmp_path)
    df = things_images.check(tmp_path)
    assert (df["status"] == "present").all()
    assert things_images.check(tmp_path / "x")["status"].eq("missing").all()
