"""THINGS-fMRI (THINGS-data, Hebart et al. 2023): single-trial fMRI responses to THINGS images.

Layout (``root`` = the ``THINGS-fMRI`` folder, or its ``derivatives`` folder; DATASETS.md §3.3)::

    derivatives/betas_csv/sub-XX_ResponseData.h5       pandas HDFStore, fixed format, key "ResponseData":
                                                       rows = voxels (sub-01: 211,339), columns
                                                       ['voxel_id', 0, 1, ..., 9839] (one per trial)
    derivatives/betas_csv/sub-XX_StimulusMetadata.csv  row i <-> trial column i (catch trials excluded):
                                                       trial_type (train|test), session, run, subject_id,
                                                       trial_id, stimulus (dog_12s.jpg), concept
    derivatives/betas_csv/sub-XX_VoxelMetadata.csv     row i <-> table row i: voxel_id, voxel_x/y/z,
                                                       nc_singletrial, nc_testset (percent), pRF fields,
                                                       0/1 ROI columns (names may contain newlines)
    derivatives/betas_vol/sub-XX/ses-thingsNN/sub-XX_ses-thingsNN_run-RR_betas.nii.gz     (X, Y, Z, 92)
    derivatives/betas_vol/sub-XX/ses-thingsNN/sub-XX_ses-thingsNN_run-RR_conditions.tsv  incl. catch trials
    derivatives/brainmasks/sub-XX_space-T1w_brainmask.nii.gz   mask voxels in C order <-> table rows

Memory: sub-01's table is 211,339 voxels × 9,840 trials (16.6 GB as float64). The loader never
reads it whole: it opens the pandas store's arrays with h5py (``ResponseData/block{i}_values``,
stored transposed as (n_voxels, n_items), with the column labels in ``block{i}_items``) and reads
only the rows of the selected voxels, in batches of bounded size, averaging or sorting them straight
into the float32 output. Extra memory is the batch buffer (``chunk_bytes``, default 64 MB) — at
most 2× the output for any ROI of a realistic size (``python -m benchmarks things``).

Stimulus ids are the image file stems (``dog_12s``), shared with THINGS-EEG2 and THINGS images.
Splits: ``train`` (8,640 images, one presentation each) and ``test`` (100 images × 12
presentations), from ``trial_type``. Noise ceilings come from the voxel metadata (percent → fraction).

Modules: :mod:`.layout` (paths), :mod:`.store` (the pandas HDF store read with h5py),
:mod:`.metadata` (stimulus and voxel tables), :mod:`.loader` (:func:`load`, :func:`load_brain`,
:func:`check`); every name is re-exported here.

Reference: Hebart, Contier, Teichmann et al. (2023), "THINGS-data, a multimodal collection of
large-scale datasets for investigating object representations in human brain and behavior", eLife
12:e82580.
"""

from .layout import CARD, FOLDER
from .loader import check, load, load_brain
from .metadata import NON_ROI_COLUMNS, read_stimulus_metadata, roi_columns
from .store import KEY, _LabelUnpickler, read_response_rows, response_table_info  # _LabelUnpickler: tested here

__all__ = [
    "FOLDER",
    "CARD",
    "KEY",
    "NON_ROI_COLUMNS",
    "load",
    "load_brain",
    "read_response_rows",
    "response_table_info",
    "read_stimulus_metadata",
    "roi_columns",
    "check",
]
