"""Statistics across models: correlations with p-values, bootstrap CIs, partial correlation, max-over-K correction.

Every function here treats **models as the sampling unit**: ``x`` and ``y`` hold one value per
model (e.g. a model's LID at K = 20 and its ROI-mean encoding score), and resampling or
permutation shuffles models (or whole model families), never stimuli or voxels.

Functions
---------
:func:`correlation`
    Pearson or Spearman r with its two-sided p-value (scipy's exact t / permutation-free forms).
:func:`bootstrap_corr_ci`
    Percentile bootstrap CI of r over models (pairs resampled with replacement).
:func:`partial_correlation`
    r of x and y after regressing both on covariates (e.g. log(parameters)), with the
    t-test p-value on ``n − 2 − n_covariates`` degrees of freedom.
:func:`max_over_k_test`
    The r-vs-K curve with every K's p-value corrected for the number of K tried: the
    single-step max-``|r|`` permutation test over models (Westfall & Young 1993).
:func:`correlation_summary`
    All of the above for one (x, y) pair, as a flat dict (one row of an analysis table).

Model families (zoos are widths and depths of a few architectures, not independent draws):

:func:`family_correlation`
    One scope — ``pooled``, ``within`` (values centred on their family mean) or ``between``
    (family means) — with a family-aware p-value (permutation within families, of family means,
    or both) and interval (cluster bootstrap over families).
:func:`family_decomposition`
    The three scopes for Pearson and Spearman (and partial r), with warnings in words
    (Simpson's paradox; too few families or models per family).
:func:`family_max_over_k_test`
    The max-``|r|`` over K correction for one scope, under that scope's permutations.
:func:`mantel_test`
    Pairwise (model × model) targets: a permutation of model labels (within families when given).

References
----------
Westfall, P. H. & Young, S. S. (1993). Resampling-Based Multiple Testing. Wiley.
Efron, B. & Tibshirani, R. (1993). An Introduction to the Bootstrap. Chapman & Hall.
Mantel, N. (1967). The detection of disease clustering and a generalized regression approach.
Cancer Research 27:209–220.
Kennedy, P. E. (1995). Randomization tests in econometrics. J. Bus. Econ. Stat. 13:85–94.
Cameron, A. C., Gelbach, J. B. & Miller, D. L. (2008). Bootstrap-based improvements for inference
with clustered errors. Rev. Econ. Stat. 90:414–427.

Modules: :mod:`.correlation` (models exchangeable), :mod:`.families` (family-aware scopes, Mantel)
over :mod:`.scopes` (their resampling machinery); every public name is importable from
``brainlid.stats``.
"""

from .correlation import (METHODS, bootstrap_corr_ci, correlation, correlation_summary, max_over_k_test,
                          partial_correlation)
from .families import family_correlation, family_decomposition, family_max_over_k_test, mantel_test
from .scopes import MIN_FAMILIES_INFERENCE, MIN_FAMILIES_POINT, MIN_WITHIN_DF, SCOPES, family_codes

__all__ = [
    "correlation",
    "bootstrap_corr_ci",
    "partial_correlation",
    "max_over_k_test",
    "correlation_summary",
    "family_codes",
    "family_correlation",
    "family_decomposition",
    "family_max_over_k_test",
    "mantel_test",
    "METHODS",
    "SCOPES",
    "MIN_FAMILIES_POINT",
    "MIN_FAMILIES_INFERENCE",
    "MIN_WITHIN_DF",
]
