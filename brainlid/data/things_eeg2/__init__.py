"""THINGS-EEG2 (Gifford et al. 2022): time-resolved EEG responses to THINGS images.

Layout (``root`` = the project directory of the dataset, DATASETS.md §4.2)::

    eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_training.npy   dict, (16540, 4, 17, 100) float64
    eeg_dataset/preprocessed_data/sub-XX/preprocessed_eeg_test.npy       dict, (200, 80, 17, 100) float64
    eeg_dataset/source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-train_part-ZZ_eeg.{vhdr,vmrk,eeg}
    eeg_dataset/source_data/sub-XX/ses-YY/eeg/sub-XX_ses-YY_task-test_eeg.{vhdr,vmrk,eeg}
    eeg_dataset/source_data/sub-XX/ses-YY/beh/sub-XX_ses-YY_task-train_part-ZZ_beh.mat  (and task-test)
    image_set/training_images/00001_aardvark/aardvark_01b.jpg ...
    image_set/test_images/00001_aircraft_carrier/aircraft_carrier_06s.jpg ...
    image_set/image_metadata.npy                                          dict of the sorted image lists

The preprocessed files are ``np.save`` of a dict (a pickle): they are read only from inside the
dataset root the user chose (a published, documented format), never from anywhere else.
Image condition ``i`` (0-based) of a file is the ``i``-th image of the sorted image list
(``image_metadata['train_img_files'][i]``); stimulus ids are the image file stems
(``aardvark_01b``), shared with THINGS-fMRI and THINGS images (:func:`~brainlid.data.things_images.image_id`).

Output: :class:`~brainlid.data.BrainData` with axes ``(stimulus, channel, time)`` (repetitions
averaged) or ``(stimulus, rep, channel, time)`` (kept), ``times`` in seconds, one ``units`` row per
channel (name, type, standard 10-05 position in metres, ``roi:`` groups ``occipital``,
``parietal``, ``parieto-occipital``, ``posterior``) and a per-channel, per-time noise ceiling: the
split-half reliability across repetitions with the Spearman–Brown correction
(:func:`brainlid.data.reliability.split_half_reliability`), clipped at 0 (METHODS §6).

The raw path (:func:`load_raw`) reads the BrainVision recordings with MNE and follows the
authors' recipe (``gifale95/eeg_encoding`` ``02_eeg_preprocessing``): occipital/parietal channels
(``^O *|^P *``), epochs −0.2…0.8 s around each image onset, baseline correction on −0.2…0 s,
resampling of the epochs to 100 Hz, optional multivariate noise normalisation (MVNN) per
session, and sorting of the repetitions by image condition.

Modules: :mod:`.shared` (layout, image lists, channels, the ceiling), :mod:`.published` (the
preprocessed files: :func:`load`, :func:`load_brain`, :func:`check`), :mod:`.raw` (BrainVision +
MNE + MVNN: :func:`load_raw`); every name is re-exported here.

Reference: Gifford, Dwivedi, Roig & Cichy (2022), "A large and rich EEG dataset for modeling
human visual object recognition", NeuroImage 264:119754.
"""

from .published import check, load, load_brain
from .raw import DEFAULT_PICKS, TARGET_CODE, epoch_recording, load_raw, mvnn_whitener, read_beh_events
from .shared import (
    CARD,
    FOLDER,
    channel_table,
    distinct_half_splits,
    eeg_noise_ceiling,
    image_table,
    load_stimuli,
    read_npy_dict,
)

__all__ = [
    "FOLDER",
    "CARD",
    "DEFAULT_PICKS",
    "TARGET_CODE",
    "load",
    "load_brain",
    "load_raw",
    "load_stimuli",
    "image_table",
    "read_npy_dict",
    "read_beh_events",
    "epoch_recording",
    "mvnn_whitener",
    "eeg_noise_ceiling",
    "distinct_half_splits",
    "channel_table",
    "check",
]
