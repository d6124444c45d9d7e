"""Paired comparisons of two models on the same brain data (``brainlid compare``).

Two models scored on one benchmark were evaluated on the **same** test stimuli, so their scores
are correlated: an easy stimulus is easy for both. Comparing their two intervals ignores that
(overlapping intervals do not mean "no difference"); the paired bootstrap resamples the
stimuli once and recomputes both models' scores on every resample, so the interval and p-value
are those of the difference ``A − B`` itself.

Pure functions over arrays (:mod:`.paired`), then a thin reader of the results store (:mod:`.compare`):

* :func:`holm` — Holm's step-down adjustment of p-values (several benchmarks compared);
* :func:`paired_summary` — estimate, interval and two-sided p-value of a difference from its
  bootstrap replicates (basic interval; optional variance correction);
* :func:`dual_bootstrap_variance`, :func:`group_summary` — the group-level difference over
  several subjects seen on the same stimuli, resampling subjects and stimuli together with the
  variance correction of Schütt et al. (2023) (rsatoolbox's ``eval_dual_bootstrap``);
* :func:`encoding_replicates`, :func:`rsa_replicates` — both models' scores on the original and
  on the resampled stimuli (held-out predictions, or model RDMs);
* :func:`compare_models` — reads rows and arrays from a :class:`~brainlid.scoring.store.ResultsStore`
  and returns the tidy comparison table (:data:`COMPARISON_COLUMNS`).

Conventions
-----------
* **Interval**: basic bootstrap interval ``(2d̂ − q_hi, 2d̂ − q_lo)`` of the replicates d* of the
  difference (as the encoding rows' intervals, :func:`brainlid.alignment.uncertainty.basic_interval`).
* **p-value** (two-sided): ``min(1, 2 (1 + #{b : 2d̂ − d*_b on the other side of 0 or at 0}) / (1 + B))``
  — the share of reflected replicates beyond 0, doubled, with the +1 that keeps it valid; 0 is
  outside the (1 − α) basic interval about when p < α. Identical models: d̂ = 0 and p = 1.
* **RSA**: resampling stimuli counts the residual of each stimulus *pair* three times
  (:func:`brainlid.alignment.rsa_bootstrap.second_order_excess`); the replicates of a difference
  are shrunk about d̂ by ``√(max(V − excess, V/4) / V)`` with the excess of the difference.
* **Group level** (several subjects, same stimuli): the mean over subjects of the per-subject
  difference. Replicates resample subjects (counts over S) and stimuli (the same stimulus counts
  for every subject) together; the plain two-factor bootstrap double-counts the subject ×
  stimulus noise (Schütt et al. 2023), so the variance is the dual-bootstrap combination of the
  subjects-only, stimuli-only and both bootstraps (:func:`dual_bootstrap_variance`), and the
  both-bootstrap replicates are shrunk to it.
* **Several benchmarks**: ``p_holm`` — Holm's adjustment over the rows of one metric and level
  (every benchmark and time point compared).

References
----------
Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 13 and 16. Davison & Hinkley
(1997), §5.2 (basic interval). Holm (1979), Scand. J. Stat. 6:65. Schütt, Kipnis, Diedrichsen,
Kriegeskorte (2023), "Statistical inference on representational geometries", eLife 12:e82566.
"""

from .compare import CI_METHOD_GROUP, CI_METHOD_PAIRED, COMPARISON_COLUMNS, compare_models
from .paired import (dual_bootstrap_variance, encoding_replicates, encoding_replicates_by_units, group_summary, holm,
                     paired_summary, rsa_replicates)

__all__ = ["COMPARISON_COLUMNS", "holm", "paired_summary", "dual_bootstrap_variance", "group_summary",
           "encoding_replicates", "encoding_replicates_by_units", "rsa_replicates", "compare_models",
           "CI_METHOD_PAIRED", "CI_METHOD_GROUP"]
