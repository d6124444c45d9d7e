"""Natural Scenes Dataset (Allen et al. 2022): single-trial betas paired with the 73k images.

Layout, formats and conventions follow the shared spec DATASETS.md §1; every path comes from
the dataset card ``datasets/nsd.toml``. What :func:`load` does:

* **Trials → images.** Position ``k`` of session file ``NN`` is global trial ``g = (NN-1)·T + k``
  (``T`` = 750 trials per session in the real data, read from the files). Its image is
  ``subjectim[subject-1, masterordering[g]-1]`` (both 1-based in ``nsd_expdesign.mat``), and the
  stimulus id is that **73k id minus 1** (0-based: the ``imgBrick`` row and the CSV row).
* **Scaling.** Volume and native-surface betas are int16 = round(PSC × 300): divided by 300.
  fsaverage MGH betas are float32 PSC already (NaN possible: vertices with any NaN in the loaded
  sessions are dropped, counted in ``meta["dropped_nan_units"]``).
* **Axis order.** MATLAB-written HDF5 appears reversed: ``/betas`` is ``(T, Z, Y, X)`` for volumes
  (``h5["betas"][t] == nifti[..., t].T``) and ``(T, V)`` on the native surface. Units are
  reported in NIfTI voxel order ``(i, j, k)``.
* **Z-scoring** (``zscore=True``, default): each unit is z-scored over the trials of each session
  (population SD, ``ddof=0``), as NSD did before computing ncsnr. Units constant within a
  session get 0 there (counted in ``meta["constant_units"]``).
* **Repetitions** are averaged (``average_reps=True``) or kept as ``(stimulus, rep, unit)`` with
  NaN padding; ``n_reps`` counts the trials behind each stimulus in the loaded sessions.
* **Noise ceiling** from ``ncsnr`` through :func:`brainlid.data.reliability.nc_from_ncsnr`, as a
  fraction, using the repetition counts of the test split's stimuli (the scored ones; mixture
  ``A = mean 1/n_i`` when they differ). The raw ncsnr is kept in ``units["ncsnr"]``.
* **Splits** (``split=``): ``"shared1000"`` (default) — test = the shared images
  (``sharedix``), train = the rest; ``"algonauts"`` — the Algonauts 2023 rule: train = images shown
  in the first ``last − 3`` sessions (``last`` = highest session loaded), test = images whose trials
  all lie in the last 3 sessions, excluding shared images except, for subjects 1, 2, 5, 7, shared
  images whose 3 repetitions all lie there. Stimuli in neither set are in neither split.
* **ROIs** by name, resolved through the ctab files of the copy (the published codes of
  :data:`KNOWN_LABELS` when a ctab is missing, with a warning): label names
  (``V1v``, ``hV4``, ``EBA``, ``FFA-1``, ``PPA``, ``ventral`` …), unions ``V1``/``V2``/``V3``, whole
  files (``nsdgeneral``, ``floc-faces`` …) and qualified ``"<file>:<label>"`` names (e.g.
  ``"Kastner2015:V1v"``). Several at once; membership in ``units["roi:<NAME>"]``.
* **Memory.** Only the ROI's voxels are read from each session: HDF5 reads are slices along the
  file's chunking (one voxel's time series per chunk), NIfTI/MGH files are streamed in blocks
  of volumes; the output is allocated once in float32.

Modules: :mod:`.design` (layout constants, session files, trials → images, splits),
:mod:`.readers` (beta file formats), :mod:`.rois` (ROI names → units), :mod:`.loader`
(:func:`load`), :mod:`.inventory` (:func:`check`, :func:`summarize`). Every name is
re-exported here: ``brainlid.data.nsd.load`` etc.
"""

from .design import BETA_VERSIONS, CARD, SPACES, SPLITS, SUBJECTS, VOLUME_SPACES, find_sessions, trial_ids
from .inventory import check, summarize
from .loader import load
from .readers import (
    SCALE,
    read_surface_betas_hdf5,
    read_surface_betas_mgh,
    read_volume_betas_hdf5,
    read_volume_betas_nifti,
)
from .rois import KNOWN_LABELS, ROI_FILES, ROI_UNIONS, available_rois

__all__ = [
    "load",
    "check",
    "summarize",
    "CARD",
    "SPACES",
    "VOLUME_SPACES",
    "BETA_VERSIONS",
    "SUBJECTS",
    "SPLITS",
    "SCALE",
    "ROI_FILES",
    "ROI_UNIONS",
    "KNOWN_LABELS",
    "available_rois",
    "find_sessions",
    "read_volume_betas_hdf5",
    "read_volume_betas_nifti",
    "read_surface_betas_hdf5",
    "read_surface_betas_mgh",
    "trial_ids",
]
