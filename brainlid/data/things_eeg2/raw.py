"""THINGS-EEG2 from the raw BrainVision recordings, preprocessed with MNE as the authors did.

:func:`load_raw` follows ``gifale95/eeg_encoding`` ``02_eeg_preprocessing``: occipital/parietal
channels (``^O *|^P *``), epochs −0.2…0.8 s around each image onset (:func:`epoch_recording`,
conditions from :func:`read_beh_events`), baseline correction on −0.2…0 s, resampling of the
epochs to 100 Hz, optional multivariate noise normalisation per session (:func:`mvnn_whitener`),
and sorting of the repetitions by image condition.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import mne
import numpy as np
from scipy.io import loadmat

from ...errors import DatasetNotFoundError, FileFormatError, InputError, StimulusMismatchError
from ..brain import BrainData
from ..cards import get_card
from ..provenance import detect_data_source
from .shared import CARD, _check_split, _mean_reps, _root, _sub, channel_table, eeg_noise_ceiling, image_table

__all__ = ["DEFAULT_PICKS", "TARGET_CODE", "load_raw", "read_beh_events", "epoch_recording", "mvnn_whitener"]


DEFAULT_PICKS = r"^O *|^P *"


TARGET_CODE = 99999


def read_beh_events(path) -> np.ndarray:
    """Image condition numbers of one recording, in presentation order, from its ``beh.mat``.

    ``loadmat(path)['data']`` is a 1×1 struct with fields ``paradigm_info, subject_info, images``;
    ``images`` is a 1×N struct array whose ``tot_img_number`` field is the condition (1-based;
    ``0`` marks a target trial). Returns int64 ``(N,)``.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"THINGS-EEG2 behavioural file not found: {path} (it gives the image of every EEG event)")
    try:
        mat = loadmat(path)
        data = mat["data"][0][0]
        images = data["images"] if "images" in (data.dtype.names or ()) else data[2]
        values = np.ravel(images["tot_img_number"])
        return np.asarray([int(np.ravel(v)[0]) for v in values], dtype=np.int64)
    except (KeyError, IndexError, ValueError, TypeError, NotImplementedError) as exc:
        raise FileFormatError(f"{path}: cannot read data.images.tot_img_number ({type(exc).__name__}: {exc})") from exc


def epoch_recording(vhdr, beh, *, tmin: float = -0.2, tmax: float = 0.8, sfreq: float | None = 100.0, picks: str | None = DEFAULT_PICKS):
    """Epoch one BrainVision recording the THINGS-EEG2 way.

    Reads ``vhdr`` with :func:`mne.io.read_raw_brainvision`, takes the events from its
    ``Stimulus/...`` markers (the authors drop the first annotation, the "New Segment" marker;
    keeping only stimulus markers is the same when MNE reports that marker, and still right when
    it does not), labels them with the conditions of
    ``beh`` (:func:`read_beh_events`), drops target trials (condition 0), keeps the channels
    matching the regular expression ``picks``, epochs ``tmin…tmax`` s with baseline correction on
    ``tmin…0`` s, and resamples the epochs to ``sfreq`` Hz (``None`` keeps the recording's rate).

    Returns
    -------
    data : ndarray of shape (n_events, n_channels, n_times) float64, volts
    codes : ndarray of shape (n_events,) int64, image conditions (1-based)
    ch_names : list of str
    times : ndarray of shape (n_times,), seconds
    """
    vhdr, beh = Path(vhdr), Path(beh)
    if not vhdr.exists():
        raise DatasetNotFoundError(f"THINGS-EEG2 recording not found: {vhdr}")
    try:
        raw = mne.io.read_raw_brainvision(vhdr, preload=True, verbose="error")
    except (OSError, ValueError, RuntimeError) as exc:
        raise FileFormatError(f"cannot read BrainVision recording {vhdr}: {exc}") from exc
    stim = [d for d in np.unique(raw.annotations.description) if str(d).startswith("Stimulus/")]
    try:
        events, _ = mne.events_from_annotations(raw, event_id={d: i + 1 for i, d in enumerate(stim)}, verbose="error") if stim else (None, None)
    except ValueError:
        events = None
    codes = read_beh_events(beh)
    if events is None or len(events) == 0:
        raise FileFormatError(f"{vhdr} has no stimulus events (no 'Stimulus/...' markers in its .vmrk); {beh.name} lists {len(codes)} images")
    events = events.copy()
    if len(events) != len(codes):
        raise FileFormatError(f"{vhdr} has {len(events)} stimulus events, but {beh} lists {len(codes)} images")
    events[:, 2] = codes
    events = events[codes != 0]
    if not len(events):
        raise FileFormatError(f"{vhdr}: every event is a target trial; no image events to epoch")
    if picks:
        idx = mne.pick_channels_regexp(raw.ch_names, picks)
        if len(idx) == 0:
            raise FileFormatError(f"{vhdr}: no channel matches {picks!r} (channels: {raw.ch_names[:10]}...)")
        raw.pick([raw.ch_names[i] for i in idx])
    epochs = mne.Epochs(raw, events, tmin=tmin, tmax=tmax, baseline=(None, 0), preload=True, reject=None, flat=None, verbose="error")
    if len(epochs) < len(events):
        warnings.warn(f"{vhdr}: {len(events) - len(epochs)} event(s) too close to the recording's edges were dropped", RuntimeWarning, stacklevel=2)
    if sfreq is not None and sfreq < raw.info["sfreq"]:
        epochs.resample(sfreq, verbose="error")
    return epochs.get_data(copy=False), epochs.events[:, 2].astype(np.int64), list(epochs.ch_names), epochs.times.copy()


def _shrunk_cov(x: np.ndarray) -> np.ndarray:
    """Ledoit–Wolf covariance of ``x`` (n_samples, n_channels) on standardised channels, rescaled.

    The estimator scikit-learn's LDA uses for ``shrinkage='auto'`` (and THINGS-EEG2's MVNN).
    """
    from sklearn.covariance import ledoit_wolf  # heavy: scikit-learn (~1 s at import), only MVNN needs it

    sd = x.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    s, _ = ledoit_wolf((x - x.mean(axis=0)) / sd)
    return sd[:, None] * s * sd[None, :]


def mvnn_whitener(data: np.ndarray, codes: np.ndarray, dim: str = "epochs") -> np.ndarray:
    """Multivariate noise normalisation matrix Σ^(−1/2) of one session (Guggenmos et al. 2018).

    Σ is a shrinkage (Ledoit–Wolf) covariance of the channels, computed per image condition and
    averaged: with ``dim="epochs"`` over time within each epoch (then averaged over the
    condition's epochs), with ``dim="time"`` over the condition's repetitions at each time point
    (then averaged over time). Whitened data are ``Σ^(−1/2) x`` per epoch and time.

    Parameters
    ----------
    data : ndarray of shape (n_epochs, n_channels, n_times)
    codes : ndarray of shape (n_epochs,)
        Image condition of each epoch.
    dim : {"epochs", "time"}

    Returns
    -------
    W : ndarray of shape (n_channels, n_channels), symmetric.
    """
    if dim not in ("epochs", "time"):
        raise InputError(f"mvnn dim must be 'epochs' or 'time', got {dim!r}")
    n_ch = data.shape[1]
    sigmas = []
    for c in np.unique(codes):
        cd = data[codes == c]
        if dim == "epochs":
            sigmas.append(np.mean([_shrunk_cov(e.T) for e in cd], axis=0))
        elif cd.shape[0] >= 2:
            sigmas.append(np.mean([_shrunk_cov(cd[:, :, t]) for t in range(cd.shape[2])], axis=0))
    if not sigmas:
        raise InputError("MVNN over time needs conditions with at least 2 repetitions in the session")
    sigma = np.mean(sigmas, axis=0)
    w, v = np.linalg.eigh((sigma + sigma.T) / 2)
    floor = max(w.max(), 1e-300) * 1e-12
    w = np.clip(w, floor, None)
    assert v.shape == (n_ch, n_ch)
    return (v * w ** -0.5) @ v.T


def _raw_recordings(r: Path, sub: str, split: str, sessions=None) -> list[tuple[str, list[tuple[Path, Path]]]]:
    card = get_card(CARD)
    n = int(sub[4:])
    base = card.file(r, "source_dir", subject=n)
    if not base.is_dir():
        raise card.not_found(base, "source data folder", subject=n)
    found = sorted(int(m.group(1)) for p in base.glob("ses-*") if p.is_dir() and (m := re.fullmatch(r"ses-(\d+)", p.name)))
    if sessions is not None:
        want = {int(str(x).replace("ses-", "")) for x in sessions}
        found = [x for x in found if x in want]
    out = []
    for ses in found:
        if split == "train":
            pairs, part = [], 1
            while card.file(r, "raw_train", subject=n, session=ses, part=part).exists():
                pairs.append((card.file(r, "raw_train", subject=n, session=ses, part=part), card.file(r, "beh_train", subject=n, session=ses, part=part)))
                part += 1
        else:
            v = card.file(r, "raw_test", subject=n, session=ses)
            pairs = [(v, card.file(r, "beh_test", subject=n, session=ses))] if v.exists() else []
        if pairs:
            out.append((f"ses-{ses:02d}", pairs))
    if not out:
        raise card.not_found(card.file(r, f"raw_{split}", subject=n, session=1, part=1), f"{split} BrainVision recording", subject=n)
    return out


def load_raw(
    root=None,
    subject=1,
    split: str = "train",
    average_reps: bool = True,
    *,
    sessions=None,
    mvnn: bool = False,
    mvnn_dim: str = "epochs",
    sfreq: float | None = 100.0,
    tmin: float = -0.2,
    tmax: float = 0.8,
    picks: str | None = DEFAULT_PICKS,
    max_reps: int | None = None,
    noise_ceiling: bool = True,
    nc_splits: int | None = None,
    seed: int | None = 0,
) -> BrainData:
    """Preprocess the raw BrainVision recordings of one subject into the same :class:`BrainData` as :func:`load_brain`.

    Every recording of the split (training parts 01–05 of every session, or the test recording
    of every session) is epoched with :func:`epoch_recording`; with ``mvnn`` each session's
    epochs are whitened with its own :func:`mvnn_whitener` (the authors pool the session's test
    and training covariances; here the loaded split's own epochs are used). Repetitions of each
    image condition are collected in session/recording order; ragged counts are NaN-padded.

    Parameters
    ----------
    root, subject, split, average_reps
        As in :func:`load` (``split`` "train" or "test").
    sessions : list of int or None
        Sessions to use (default all ``ses-*`` folders).
    mvnn, mvnn_dim
        Multivariate noise normalisation per session (off by default).
    sfreq, tmin, tmax, picks
        Epoching options of :func:`epoch_recording` (authors: 100 Hz, −0.2…0.8 s, ``^O *|^P *``).
    max_reps : int or None
        Keep at most this many repetitions per image (the first ones).
    noise_ceiling, nc_splits, seed
        As in :func:`load`.

    Returns
    -------
    BrainData
        Units in volts without MVNN (whitened, arbitrary units with it); ``meta["source"] == "raw"``.
    """
    _check_split(split, ("train", "test"))
    r = _root(root)
    sub = _sub(subject)
    table = image_table(r, split)
    n_cond = len(table)
    data_all, codes_all = [], []
    ch_names = times = None
    for ses, pairs in _raw_recordings(r, sub, split, sessions):
        ses_data, ses_codes = [], []
        for vhdr, beh in pairs:
            d, c, ch, t = epoch_recording(vhdr, beh, tmin=tmin, tmax=tmax, sfreq=sfreq, picks=picks)
            if ch_names is None:
                ch_names, times = ch, t
            elif ch != ch_names or t.shape != times.shape:
                raise FileFormatError(f"{vhdr}: channels or epoch length differ from the first recording ({len(ch)} vs {len(ch_names)} channels)")
            if c.max() > n_cond or c.min() < 1:
                raise StimulusMismatchError(f"{beh} names image conditions up to {c.max()} but the {split} image list has {n_cond} images")
            ses_data.append(d)
            ses_codes.append(c)
        d = np.concatenate(ses_data)
        c = np.concatenate(ses_codes)
        if mvnn:
            W = mvnn_whitener(d, c, dim=mvnn_dim)
            d = np.einsum("dc,nct->ndt", W, d)
        data_all.append(d.astype(np.float32))
        codes_all.append(c)
    data = np.concatenate(data_all)
    codes = np.concatenate(codes_all)
    del data_all
    present = np.unique(codes)
    counts = np.bincount(codes, minlength=n_cond + 1)[present]
    n_rep = int(counts.max()) if max_reps is None else int(min(counts.max(), max_reps))
    reps = np.full((present.size, n_rep) + data.shape[1:], np.nan, dtype=np.float32)
    row = np.searchsorted(present, codes)
    slot = np.zeros(present.size, dtype=np.int64)
    for i in range(codes.size):  # keeps session / recording order of the repetitions
        k = row[i]
        if slot[k] < n_rep:
            reps[k, slot[k]] = data[i]
            slot[k] += 1
    del data
    nc = eeg_noise_ceiling(reps, n_splits=nc_splits, seed=seed) if noise_ceiling and n_rep >= 2 and np.sum(slot >= 2) >= 3 else None
    if average_reps:
        resp, n_reps = _mean_reps(reps)
    else:
        resp, n_reps = reps, slot.copy()
    sel = table.iloc[present - 1].reset_index(drop=True)
    missing = n_cond - present.size
    return BrainData(
        responses=resp,
        stimulus_ids=sel["stimulus_id"].to_numpy(),
        units=channel_table(ch_names),
        times=np.asarray(times, dtype=np.float64),
        noise_ceiling=nc,
        n_reps=n_reps,
        splits={split: sel["stimulus_id"].to_numpy()},
        subject=sub,
        dataset="things_eeg2",
        space="eeg",
        has_reps=not average_reps,
        meta={
            "source": "raw",
            "data_source": detect_data_source(r),
            "split": split,
            "mvnn": bool(mvnn),
            "mvnn_dim": mvnn_dim if mvnn else None,
            "sfreq": sfreq,
            "tmin": tmin,
            "tmax": tmax,
            "picks": picks,
            "units": "whitened (MVNN)" if mvnn else "V",
            "conditions_without_events": int(missing),
            "concepts": sel["concept"].tolist(),
        },
    )
