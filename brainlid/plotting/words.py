"""Scores, measures, targets and numbers in words, for axis labels, captions and report tables.

No drawing here (no matplotlib): :mod:`brainlid.report` writes its tables with the same words
and number formats as the figures.
"""

from __future__ import annotations

import re
import textwrap

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- words and numbers for people
#: Metric ids of the score table in words (axis labels, captions, table headers).
METRIC_WORDS = {
    "encoding_r2": "encoding R²", "encoding_r": "encoding r", "rsa_spearman": "RSA (Spearman ρ)",
    "rsa_pearson": "RSA (Pearson r)", "rsa_kendall_tau_a": "RSA (Kendall τa)", "rsa_cosine": "RSA (cosine)",
    "mutual_knn": "mutual k-NN", "cknna": "CKNNA", "cka": "CKA", "cka_linear": "linear CKA",
    "cka_linear_unbiased": "unbiased linear CKA", "cka_rbf": "RBF CKA", "ridge_r2": "ridge R²",
}

#: Dimension measures (columns of :attr:`AnalysisResult.models`) in words.
MEASURE_WORDS = {
    "participation_ratio": "participation ratio", "pca90": "PCA dimension (90 % variance)",
    "pca95": "PCA dimension (95 % variance)", "pca99": "PCA dimension (99 % variance)",
    "twonn": "TwoNN dimension", "mle_full": "MLE dimension at K = N − 1",
}


def metric_words(metric) -> str:
    """A score-table metric id in words (``encoding_r2`` → ``encoding R²``).

    Parameters
    ----------
    metric : str
        A metric id of the score table.

    Returns
    -------
    str
        Its words (:data:`METRIC_WORDS`); unknown ids are returned as given.
    """
    return METRIC_WORDS.get(str(metric), str(metric))


def describe_measure(measure: str, *, estimator: str = "mle", k: int | None = None) -> str:
    """A dimension measure in words: ``lid`` / ``lid_K20`` / ``lid_mle_K20`` → ``LID (MLE, K = 20)``, globals by name.

    Parameters
    ----------
    measure : str
        A measure column of :attr:`brainlid.analysis.AnalysisResult.models` (``lid``,
        ``lid_K<k>``, ``lid_<estimator>_K<k>``, a global measure, or ``|delta <measure>|``).
    estimator : str
        The LID estimator when ``measure`` does not name one.
    k : int or None
        The K when ``measure`` does not name one (None: no K in the words).

    Returns
    -------
    str
    """
    m = re.fullmatch(r"(?:\|delta )?lid(?:_([a-z0-9]+))?(?:_K(\d+))?\|?", str(measure))
    if m:
        est = (m.group(1) or estimator).upper()
        kk = m.group(2) or k
        text = f"LID ({est}{f', K = {kk}' if kk is not None else ''})"
    else:
        base = str(measure).removeprefix("|delta ").removesuffix("|")
        text = MEASURE_WORDS.get(base, base)
    return f"|difference in {text}|" if str(measure).startswith("|delta ") else text


def describe_target(target: str, metric: str | None = None, value: str = "value") -> str:
    """An alignment target of the across-model analysis in words.

    E.g. ``brain:nsd.subj01.EBA.encoding`` → ``test encoding R², nsd.subj01.EBA.encoding``.

    Parameters
    ----------
    target : str
        A target column of :attr:`brainlid.analysis.AnalysisResult.models` (``brain:...``,
        ``brain:pooled:...``, ``model_model:...``, ``model_model_ref:...``, ``pairwise:...``,
        ``generalization``).
    metric : str or None
        The brain metric the analysis used.
    value : {"value", "normalised"}
        Whether brain scores were ceiling-normalised.

    Returns
    -------
    str
    """
    t = str(target)
    norm = " (ceiling-normalised)" if value == "normalised" else ""
    if t == "generalization":
        return "generalization (held-out accuracy)"
    if t.startswith("pairwise:"):
        return f"pairwise {metric_words(t.split(':', 1)[1])} between models"
    if t.startswith("model_model_ref:"):
        return f"{metric_words(t.split(':', 1)[1])} with the reference model"
    if t.startswith("model_model:"):
        return f"mean {metric_words(t.split(':', 1)[1])} with the other models"
    if t.startswith("brain:pooled:"):
        rest = t[len("brain:pooled:"):]
        ds_roi, _, met = rest.rpartition(".")
        return f"test {metric_words(met or metric)}{norm}, mean over subjects, {ds_roi}"
    if t.startswith("brain:"):
        return f"test {metric_words(metric) if metric else 'brain score'}{norm}, {t[len('brain:'):]}"
    return t


def _finite_float(v) -> float | None:
    """``v`` as a float, or None when it is not a number or not finite (the cell is then left empty)."""
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def format_p(p) -> str:
    """A p-value in one format for every table and figure: three decimals, ``<0.001`` below.

    Parameters
    ----------
    p : float
        A p-value (NaN or a non-number gives ``""``).

    Returns
    -------
    str
    """
    p = _finite_float(p)
    if p is None:
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def format_number(v, digits: int = 3) -> str:
    """A number to ``digits`` significant digits for tables and captions.

    Trailing zeros are kept (``0.420``), integers written as integers, thousands and above rounded
    to integers, very small/large values in scientific notation.

    Parameters
    ----------
    v : float
        The number (NaN or a non-number gives ``""``).
    digits : int
        Significant digits.

    Returns
    -------
    str
    """
    v = _finite_float(v)
    if v is None:
        return ""
    a = abs(v)
    if v == round(v) and a < 1e15:
        return f"{int(round(v)):,}" if a >= 1e3 else f"{int(round(v))}"
    if a >= 1e5 or a < 10 ** -(digits):
        return f"{v:.{digits - 1}e}"
    if a >= 10 ** (digits - 1):
        return f"{v:.0f}"
    return f"{v:#.{digits}g}".rstrip(".")



def _short(name: str, n: int = 22) -> str:
    s = str(name).split("/")[-1]
    s = s.rsplit(":", 1)[-1] if s.count(":") >= 1 else s
    return s if len(s) <= n else s[: n - 1] + "…"


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(str(text), width)) or str(text)


_PRIMARY_METRICS = ("encoding_r2", "encoding_r", "rsa_spearman", "rsa_pearson", "rsa_kendall_tau_a", "rsa_cosine")


def benchmark_metric(scores: pd.DataFrame, benchmark: str, prefer: str | None = None) -> str | None:
    """The metric a benchmark's test rows carry.

    Parameters
    ----------
    scores : DataFrame
        Score table (columns ``benchmark``, ``split``, ``metric``).
    benchmark : str
        The benchmark.
    prefer : str or None
        The metric to return when the benchmark has test rows of it.

    Returns
    -------
    str or None
        ``prefer`` when present, else the benchmark's primary metric (encoding R², then r, then
        the RSA comparisons, then the most frequent); None without test rows.
    """
    s = scores[(scores["benchmark"] == benchmark) & (scores["split"] == "test")]
    have = s["metric"].astype(str).value_counts()
    if have.empty:
        return None
    if prefer is not None and prefer in have.index:
        return prefer
    return next((m for m in _PRIMARY_METRICS if m in have.index), have.index[0])
