"""Reliability of repeated measurements: the statistics loaders and alignment both need.

One home for the formulas that turn repeated presentations into a reliability or a noise ceiling
(METHODS.md §6), and for the per-column Pearson correlation used to score predictions:

:func:`nc_from_ncsnr`
    NSD / Algonauts 2023 ceiling from the noise-ceiling SNR.
:func:`split_half_reliability`, :func:`spearman_brown`, :func:`spearman_brown_factor`
    Random split-half reliability of repeated presentations, Spearman–Brown stepped up by
    k = mean(1/⌊n_i/2⌋) / mean(1/n_i) to the repetitions actually averaged;
    :func:`split_half_weights` draws the splits (shared with the RDM split-half of
    :mod:`brainlid.alignment.ceiling`).
:func:`pearson_columns`
    Pearson r of each column of two ``(n, units)`` arrays (constant columns give 0).

Ceiling-normalised scores and RDM ceilings live in :mod:`brainlid.alignment.ceiling`, which
re-exports the names above.

References
----------
Allen et al. (2022), "A massive 7T fMRI dataset to bridge cognitive neuroscience and
artificial intelligence", Nat. Neurosci. (NSD noise ceiling, ncsnr).
Gifford et al. (2023), "The Algonauts Project 2023 Challenge" (mixture of repetition counts).
Spearman (1910), Brown (1910): r_sb = k r / (1 + (k − 1) r), k = 2 for two equal halves.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import InputError

__all__ = [
    "nc_from_ncsnr",
    "split_half_reliability",
    "split_half_weights",
    "spearman_brown",
    "spearman_brown_factor",
    "pearson_columns",
]


# --------------------------------------------------------------------------- per-column Pearson
def pearson_columns(a, b) -> np.ndarray:
    """Pearson r between matching columns of two arrays, along axis 0.

    Computed in float64: both arrays are centred over axis 0, ``r = Σ a_c b_c / √(Σ a_c² Σ b_c²)``.
    **Constant-column rule**: where the denominator is ``<= 1e-300`` (a column of ``a`` or of ``b``
    is constant over the rows) r is 0, without a warning (no variance to correlate; the rule the
    scoring runner's per-unit scores use). No clipping to [-1, 1].

    Parameters
    ----------
    a, b : array-like of shape (n, n_units[, ...])
        Same shape; rows are the samples (e.g. held-out stimuli: true and predicted responses).

    Returns
    -------
    r : ndarray of shape (n_units[, ...]) float32
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InputError(f"pearson_columns needs two arrays of the same shape; got {x.shape} and {y.shape}")
    xc = x - x.mean(axis=0)
    yc = y - y.mean(axis=0)
    den = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum(axis=0))
    r = np.where(den > 1e-300, (xc * yc).sum(axis=0) / np.where(den > 1e-300, den, 1.0), 0.0)
    return r.astype(np.float32)


# --------------------------------------------------------------------------- NSD-style ceiling
def nc_from_ncsnr(ncsnr, n_reps) -> np.ndarray:
    """Noise ceiling (fraction of explainable variance) from the noise-ceiling SNR.

    ``NC = ncsnr² / (ncsnr² + A)`` with ``A = 1/n`` when ``n_reps`` is a scalar (the
    number of trials averaged per stimulus) and ``A = mean_i(1/n_i)`` over the scored
    stimuli when ``n_reps`` is an array of per-stimulus repetition counts (the
    Algonauts 2023 convention for stimuli with different numbers of repetitions).
    NSD's ``NC%`` is ``100 × NC``.

    Parameters
    ----------
    ncsnr : array-like of shape (n_units,) or any shape
        Noise-ceiling signal-to-noise ratio per unit (σ_signal / σ_noise), >= 0.
    n_reps : int or array-like of shape (n_stimuli,)
        Repetitions averaged per stimulus (all >= 1).

    Returns
    -------
    nc : ndarray, same shape as ``ncsnr``, float32, values in [0, 1].
    """
    snr = np.asarray(ncsnr, dtype=np.float64)
    if not np.all(np.isfinite(snr)):
        raise InputError(f"ncsnr has {int(np.sum(~np.isfinite(snr)))} non-finite values")
    if np.any(snr < 0):
        raise InputError(f"ncsnr must be >= 0 (it is a ratio of standard deviations); min is {snr.min():g}")
    n = np.asarray(n_reps, dtype=np.float64)
    if n.size == 0:
        raise InputError("n_reps is empty: give the number of repetitions per scored stimulus")
    if not np.all(np.isfinite(n)) or np.any(n < 1):
        raise InputError("n_reps must be finite and >= 1 (stimuli with zero repetitions cannot be scored)")
    a = float(np.mean(1.0 / n))
    s2 = snr**2
    return (s2 / (s2 + a)).astype(np.float32)


# --------------------------------------------------------------------------- split-half reliability
def spearman_brown(r, factor: float = 2.0) -> np.ndarray:
    """Spearman–Brown prophecy: reliability of a test ``factor`` times as long.

    ``r_sb = factor·r / (1 + (factor − 1)·r)``; for split halves (``factor = 2``)
    ``r_sb = 2r / (1 + r)``. ``r`` is clipped to (−1, 1] first so that r = −1 gives a
    large negative number instead of a division by zero.
    """
    r = np.clip(np.asarray(r, dtype=np.float64), -1 + 1e-12, 1.0)
    return factor * r / (1.0 + (factor - 1.0) * r)


_spearman_brown = spearman_brown  # the parameter of split_half_reliability shadows the name


def spearman_brown_factor(n_reps) -> float:
    """Spearman–Brown step-up factor from split halves to the average of all repetitions.

    A split gives each stimulus two halves of ``⌊n_i/2⌋`` repetitions (one left out when
    ``n_i`` is odd); the scored data average all ``n_i``. The noise variance of a mean is
    proportional to 1/(repetitions averaged), so the step-up is the ratio of the mean noise
    factors, ``k = mean_i(1/⌊n_i/2⌋) / mean_i(1/n_i)`` — ``k = n/⌊n/2⌋`` with equal counts
    (2 for even n, 3 for n = 3, 2.5 for n = 5), not 2 (which would give the reliability of
    ``2⌊n/2⌋`` repetitions: 3 repeats, truth 0.429, k = 2 gives 0.331).

    Parameters
    ----------
    n_reps : int or array-like of shape (n_stimuli,)
        Repetitions per scored stimulus (each >= 2).

    Returns
    -------
    k : float (>= 2)
    """
    n = np.atleast_1d(np.asarray(n_reps, dtype=np.float64))
    if n.size == 0 or not np.all(np.isfinite(n)) or np.any(n < 2):
        raise InputError("a Spearman–Brown step-up from split halves needs >= 2 repetitions per stimulus")
    return float(np.mean(1.0 / np.floor(n / 2)) / np.mean(1.0 / n))


def split_half_weights(present: np.ndarray, half: np.ndarray, rng, n_splits: int) -> tuple[np.ndarray, np.ndarray]:
    """Averaging weights of the two halves of ``n_splits`` random splits of repeated presentations.

    Each stimulus's present repetitions are shuffled; the first ``half[i]`` form half A, the next
    ``half[i]`` half B, each weighted ``1/half[i]`` (so ``einsum("sr,sr...->s...", w[k], x)`` is the
    half-mean of split k).

    Parameters
    ----------
    present : ndarray of shape (n_stimuli, n_reps) bool
        Which repetitions exist (ragged repetitions are NaN-padded and absent).
    half : ndarray of shape (n_stimuli,) int
        Repetitions per half, usually ``⌊n_i/2⌋`` (each >= 1).
    rng : numpy.random.Generator
        Source of the random splits.
    n_splits : int
        Number of splits.

    Returns
    -------
    w_a, w_b : ndarray of shape (n_splits, n_stimuli, n_reps) float64
    """
    keys = rng.random((n_splits, *present.shape))
    keys[:, ~present] = np.inf  # missing reps sort last
    ranks = np.argsort(np.argsort(keys, axis=2), axis=2)
    h = half[None, :, None]
    w_a = (ranks < h) / h
    w_b = ((ranks >= h) & (ranks < 2 * h)) / h
    return w_a, w_b


def _pearson_over_axis0(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson r between columns of ``a`` and ``b`` along axis 0 (float64); also a 'constant' mask."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    num = np.einsum("s...,s...->...", a, b)
    den = np.sqrt(np.einsum("s...,s...->...", a, a) * np.einsum("s...,s...->...", b, b))
    const = den <= 1e-300
    r = np.where(const, 0.0, num / np.where(const, 1.0, den))
    return np.clip(r, -1.0, 1.0), const


def split_half_reliability(
    responses,
    rep_axis: int = 1,
    stimulus_axis: int = 0,
    n_splits: int = 100,
    seed: int | None = 0,
    spearman_brown: bool = True,
    chunk_bytes: int = 256_000_000,
) -> np.ndarray:
    """Random split-half reliability of repeated presentations, per unit (and time).

    For each of ``n_splits`` random splits, each stimulus's valid repetitions are
    shuffled and divided into two halves of ``⌊n_i/2⌋`` repetitions each (with an odd
    count one repetition is left out of that split, so both halves have the same
    noise level, as Spearman–Brown assumes); the two half-means are correlated
    across stimuli (Pearson r per unit[, time]). The split correlations are
    averaged, then (by default) stepped up with Spearman–Brown,
    ``r_sb = k r / (1 + (k − 1) r)`` with ``k = mean(1/⌊n_i/2⌋) / mean(1/n_i)``
    (:func:`spearman_brown_factor`; k = 2 for even counts, n/⌊n/2⌋ for odd ones), which
    estimates the reliability of the mean of all ``n_i`` repetitions — the average that is
    scored.

    With signal variance s² and per-trial noise variance σ², n repetitions per
    stimulus: r_half = s²/(s² + σ²/⌊n/2⌋) and r_sb = s²/(s² + σ²/n).

    Parameters
    ----------
    responses : array-like of shape (n_stimuli, n_reps, n_units[, n_times])
        Repeated presentations (axes given by ``stimulus_axis`` and ``rep_axis``; the
        remaining axes are unit[, time]). Ragged repetitions are NaN-padded: a
        repetition is missing when all its values are NaN. NaN inside a present
        repetition is an error.
    rep_axis, stimulus_axis : int
        Axes of repetitions and stimuli.
    n_splits : int
        Number of random split-halves averaged (>= 1).
    seed : int or None
        Seed of the random splits.
    spearman_brown : bool
        Apply the Spearman–Brown correction (default) or return the half-split r.
    chunk_bytes : int
        Temporary memory budget; units are processed in chunks that fit it.

    Returns
    -------
    r : ndarray of shape (n_units[, n_times]) float32
        Reliability per unit (and time). Constant units get 0 with a warning.

    Notes
    -----
    Stimuli with fewer than 2 repetitions are ignored (they carry no split); at least
    3 stimuli with >= 2 repetitions are required.
    """
    x = np.asarray(responses)
    if x.ndim not in (3, 4):
        raise InputError(
            f"responses must have shape (stimulus, rep, unit[, time]); got {x.ndim} dimensions {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"responses must be numeric, got dtype {x.dtype}")
    if n_splits < 1:
        raise InputError(f"n_splits must be >= 1, got {n_splits}")
    rep_axis %= x.ndim
    stimulus_axis %= x.ndim
    if rep_axis == stimulus_axis:
        raise InputError("rep_axis and stimulus_axis must differ")
    x = np.moveaxis(x, (stimulus_axis, rep_axis), (0, 1))
    n_stim, n_rep = x.shape[:2]
    rest = x.shape[2:]
    flat = x.reshape(n_stim, n_rep, -1)  # view when possible
    n_cols = flat.shape[2]

    # which repetitions are present (not entirely NaN)
    finite = np.isfinite(flat)
    present = finite.any(axis=2)  # (stim, rep)
    partial = present[:, :, None] & ~finite
    if partial.any():
        bad = np.argwhere(partial.any(axis=2))[:3]
        raise InputError(
            f"responses have NaN/inf inside {int(partial.any(axis=2).sum())} present repetitions "
            f"(first (stimulus, rep): {[tuple(map(int, b)) for b in bad]}); only whole missing "
            "repetitions may be NaN-padded"
        )
    del finite, partial
    n_i = present.sum(axis=1)
    usable = n_i >= 2
    if usable.sum() < 3:
        raise InputError(
            f"split-half reliability needs >= 3 stimuli with >= 2 repetitions; found {int(usable.sum())}"
        )
    present = present[usable]
    n_i = n_i[usable]
    flat = flat[usable]
    half = n_i // 2

    # the weight matrices of every split, shared by all units: (n_splits, stim, rep)
    w_a, w_b = split_half_weights(present, half, np.random.default_rng(seed), n_splits)

    out = np.empty(n_cols, dtype=np.float64)
    n_const = 0
    per_col = 8 * flat.shape[0] * (flat.shape[1] + 4)
    step = max(1, int(chunk_bytes // max(per_col, 1)))
    for c0 in range(0, n_cols, step):
        block = np.nan_to_num(flat[:, :, c0 : c0 + step].astype(np.float64), nan=0.0)
        acc = np.zeros(block.shape[2])
        const_any = np.zeros(block.shape[2], dtype=bool)
        for s in range(n_splits):
            mean_a = np.einsum("sr,src->sc", w_a[s], block)
            mean_b = np.einsum("sr,src->sc", w_b[s], block)
            r, const = _pearson_over_axis0(mean_a, mean_b)
            acc += r
            const_any |= const
        out[c0 : c0 + step] = acc / n_splits
        n_const += int(const_any.sum())
    if n_const:
        warnings.warn(
            f"{n_const} unit(s) have constant half-means in some split; their correlation counts as 0",
            RuntimeWarning,
            stacklevel=2,
        )
    if spearman_brown:
        out = _spearman_brown(out, spearman_brown_factor(n_i))
    return out.reshape(rest).astype(np.float32)
