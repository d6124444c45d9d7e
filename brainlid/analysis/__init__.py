"""Across-model analysis: does a model's local intrinsic dimension predict its alignment?

Given the tidy **scores** and **geometry** tables (from ``brainlid score``, the results store or
the demo) and optionally a table of generalization accuracies, :func:`analyze` builds one row
per model and correlates, across models (METHODS §7; :mod:`brainlid.stats`):

* the **headline**: LID (``estimator``, default the Levina–Bickel MLE, mean over points) at a
  K fixed in advance (default :data:`brainlid.geometry.DEFAULT_K`, 20) against each alignment target;
* the same for the **global** measures (participation ratio, PCA 90/95/99 % dimensions,
  TwoNN) — the paper's contrast;
* the exploratory **r-vs-K curve** for every K measured, with the maximum's p-value corrected
  for the number of K tried (max-``|r|`` permutation over models, :func:`brainlid.stats.max_over_k_test`).

Alignment targets (columns of :attr:`AnalysisResult.models`):

* ``brain:<benchmark>`` — the model's test score on each brain benchmark (per subject), and
  ``brain:pooled:<dataset>.<roi>.<metric>`` — its mean over the subjects that have it;
* ``model_model:<metric>`` — the mean model–model alignment over every other model, and
  ``model_model_ref:<metric>`` — against the reference model (when given);
* ``generalization`` — held-out accuracy (e.g. ImageNet top-1 from timm's
  ``results-imagenet.csv``, or the demo zoo's digit accuracy).

Every correlation row has Pearson and Spearman r with p, percentile bootstrap CIs and, when
parameter counts are known, the partial correlation controlling for log(parameters).

**Model families.** A zoo is not a sample of independent models: widths and depths of one
architecture share a recipe, and the sign of a correlation can differ within and between families
(Simpson's paradox). Every model gets a family — from ``families=`` (a CSV ``model,family`` or a
mapping), else a ``family`` column of the generalization table, else :func:`family_of`'s rule on
the model id (default: one family per architecture prefix) — stored in ``models.csv``, and every
(measure, target) is reported at three scopes (``scope`` column of ``correlations.csv``): the
pooled r, the within-family r (values centred on their family mean) and the between-family r of
family means, each with a family-aware interval and p-value and a ``warning`` in words
(:func:`brainlid.stats.family_decomposition`). Pairwise targets (``|ΔLID|`` against the pairwise
model–model alignment) use a Mantel permutation of model labels (:func:`brainlid.stats.mantel_test`).

Rows of different data sources (``data_source``: real / synthetic) are not mixed unless
``allow_mixed_sources=True``; rows of unknown source mix with either, with a warning.

Which layer: ``layer="last"`` (default; the model's final extracted layer, as the paper uses
final embeddings) or ``"selected"`` (per model, the layer chosen on the validation split of
the first brain benchmark). Baselines (pixels, random weights, shuffled) are excluded from the
correlations by default and listed separately.

Modules: :mod:`.inputs` (generalization tables, families, data sources, baselines),
:mod:`.table` (the per-model table) and :mod:`.run` (:func:`analyze`, :class:`AnalysisResult`,
:func:`write_analysis`); every public name is importable from ``brainlid.analysis``.
"""

from .inputs import (DEFAULT_FAMILY_RULE, assign_families, check_data_sources, family_of, is_baseline, read_families,
                     read_generalization)
from .run import AnalysisResult, analyze, write_analysis
from .table import GLOBAL_MEASURES, model_table

__all__ = ["analyze", "write_analysis", "AnalysisResult", "model_table", "read_generalization", "read_families", "family_of",
           "assign_families", "check_data_sources", "is_baseline", "GLOBAL_MEASURES", "DEFAULT_FAMILY_RULE"]
