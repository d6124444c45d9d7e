"""What an analysis reads besides the score tables: generalization accuracies, model families, data sources.

* :func:`read_generalization` — a table of held-out accuracies (timm's ``results-imagenet.csv``
  or ``model,generalization``), matched to model ids by their bare architecture names;
* :func:`family_of`, :func:`read_families`, :func:`assign_families` — each model's family (given,
  from the generalization table, or by :data:`DEFAULT_FAMILY_RULE` on the model id);
* :func:`check_data_sources` — real and synthetic rows are not mixed unless allowed;
* :func:`is_baseline` — the controls (pixels, random weights, shuffled stimuli) kept out of the correlations.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pandas as pd

from ..errors import InputError

#: The default family rule: the leading letters of the architecture name, with a ``v<digits>``
#: version kept (``convnext_atto`` → ``convnext``, ``resnet50`` → ``resnet``, ``convnextv2_tiny`` →
#: ``convnextv2``, ``vit_base_patch16`` → ``vit``, ``mlp_w64_d1`` → ``mlp``).
DEFAULT_FAMILY_RULE = r"^(?:[A-Za-z]+?v\d+|[A-Za-z]+)"


def is_baseline(model: str) -> bool:
    """Whether a model id names a control: pixels, random weights or shuffled stimuli.

    Parameters
    ----------
    model : str
        A model id (``baseline:...``, ``...@random[:seed]``, ``...#shuffled``).

    Returns
    -------
    bool
    """
    m = str(model)
    return m.startswith("baseline:") or "#shuffled" in m or bool(re.search(r"@random(:\d+)?$", m))



# --------------------------------------------------------------------------- generalization tables
def _bare_name(model: str) -> str:
    """``timm:convnext_atto.d2_in1k@x`` → ``convnext_atto.d2_in1k``; ``module:f.py:Net@w`` → ``Net``."""
    s = str(model)
    s = s.split("@", 1)[0]
    return s.rsplit(":", 1)[-1]


def read_generalization(path_or_df, img_size: int | None = None) -> pd.DataFrame:
    """Read a table of accuracies: ``model, top1`` (+ optional ``param_count``, ``img_size``).

    timm's ``results-imagenet.csv`` (columns ``model, img_size, top1, top1_err, top5, top5_err,
    param_count, crop_pct, interpolation``; ``param_count`` in millions) is read as is.

    Parameters
    ----------
    path_or_df : path-like or DataFrame
        The table (CSV), with a ``model`` column and a ``top1`` (or ``accuracy``, ``acc``,
        ``generalization``) column.
    img_size : int or None
        When a model has rows for several image sizes, the size kept. Default: the first row in
        file order, with a warning (the row with the highest top-1 is *not* chosen, to avoid
        cherry-picking).

    Returns
    -------
    DataFrame
        ``model, top1`` and, when present, ``n_params`` (absolute count), ``img_size`` and
        ``family`` (a model family label, see :func:`assign_families`).
    """
    if isinstance(path_or_df, pd.DataFrame):
        df = path_or_df.copy()
    else:
        path = Path(path_or_df)
        if not path.exists():
            raise FileNotFoundError(f"generalization table not found: {path}")
        df = pd.read_csv(path)
    cols = {c.lower().strip(): c for c in df.columns}
    if "model" not in cols:
        raise InputError(f"generalization table needs a 'model' column; has {list(df.columns)}")
    acc = next((cols[c] for c in ("top1", "accuracy", "acc", "generalization") if c in cols), None)
    if acc is None:
        raise InputError(f"generalization table needs a 'top1' (or 'accuracy') column; has {list(df.columns)}")
    out = pd.DataFrame({"model": df[cols["model"]].astype(str), "top1": pd.to_numeric(df[acc], errors="coerce")})
    if "img_size" in cols:
        out["img_size"] = pd.to_numeric(df[cols["img_size"]], errors="coerce")
    if "family" in cols:
        out["family"] = df[cols["family"]].astype("string").str.strip()
    if "param_count" in cols:  # timm: millions, may contain commas
        pc = pd.to_numeric(df[cols["param_count"]].astype(str).str.replace(",", ""), errors="coerce")
        out["n_params"] = pc * 1e6
    elif "n_params" in cols:
        out["n_params"] = pd.to_numeric(df[cols["n_params"]], errors="coerce")
    if img_size is not None and "img_size" in out:
        out = out[out["img_size"] == img_size]
    dup = out["model"].duplicated(keep="first")
    if dup.any():
        warnings.warn(
            f"{int(dup.sum())} model(s) have several rows (e.g. image sizes) — keeping the first of each; "
            "pass img_size to choose", RuntimeWarning, stacklevel=2,
        )
        out = out[~dup]
    return out.reset_index(drop=True)


def _match_generalization(models: list[str], gen: pd.DataFrame) -> pd.DataFrame:
    """Match scored model names to the table: exact name first, then the bare architecture name."""
    by_name = dict(zip(gen["model"], gen.index))
    rows = []
    for m in models:
        i = by_name.get(m, by_name.get(_bare_name(m)))
        rows.append({"model": m, **({k: gen.loc[i, k] for k in gen.columns if k != "model"} if i is not None else {})})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- model families
def family_of(model: str, rule=None) -> str:
    """The family of a model id by a rule (default :data:`DEFAULT_FAMILY_RULE`).

    The architecture name is the model id without its ``@weights`` / ``#shuffled`` suffix and
    without its ``source:`` prefix (``timm:convnext_atto.d2_in1k@x`` → ``convnext_atto.d2_in1k``;
    ``module:f.py:Net`` → ``Net``). When the regular expression finds nothing
    (``cifar_resnet:20`` → name ``20``), the source prefix is the family (``cifar_resnet``).

    Parameters
    ----------
    model : str
        A model id.
    rule : str, callable or None
        A regular expression searched in the architecture name (its first group if it has one,
        else the whole match), a callable ``model → family``, or ``"model"`` (every model its own
        family: models treated as independent).

    Returns
    -------
    str
    """
    if callable(rule):
        return str(rule(model))
    if rule == "model":
        return str(model)
    spec = str(model).split("#", 1)[0].split("@", 1)[0]
    source, _, name = spec.rpartition(":")
    try:
        m = re.search(rule or DEFAULT_FAMILY_RULE, name)
    except re.error as exc:
        raise InputError(f"family rule {rule!r} is not a valid regular expression: {exc}") from None
    if m:
        fam = m.group(1) if m.groups() and m.group(1) else m.group(0)
        if fam:
            return fam
    return source.split(":", 1)[0] or name or str(model)


def read_families(path_or_data) -> dict[str, str]:
    """Model → family from a CSV with columns ``model,family`` (or a DataFrame / mapping).

    Parameters
    ----------
    path_or_data : path-like, DataFrame or mapping
        The table; a model given two different families is an error.

    Returns
    -------
    dict
        Model id → family.
    """
    if isinstance(path_or_data, dict):
        return {str(k): str(v) for k, v in path_or_data.items()}
    if isinstance(path_or_data, pd.DataFrame):
        df = path_or_data
    else:
        path = Path(path_or_data)
        if not path.is_file():
            raise InputError(f"families file not found: {path}")
        try:
            df = pd.read_csv(path, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise InputError(f"families file {path} is not a readable CSV: {str(exc).splitlines()[0]}") from None
    cols = {str(c).lower().strip(): c for c in df.columns}
    if "model" not in cols or "family" not in cols:
        raise InputError(f"a families table needs columns 'model' and 'family'; has {list(df.columns)}")
    fam = df[[cols["model"], cols["family"]]].dropna()
    fam = fam.astype(str).apply(lambda c: c.str.strip())
    dup = fam[cols["model"]].duplicated(keep=False) & ~fam.duplicated(keep=False)
    if dup.any():
        raise InputError(f"the families table gives several families to {sorted(set(fam.loc[dup, cols['model']]))[:5]}")
    return dict(zip(fam[cols["model"]], fam[cols["family"]]))


def assign_families(models, families=None, generalization: pd.DataFrame | None = None, rule=None) -> tuple[list[str], str]:
    """A family for every model and where it came from.

    Precedence: ``families`` (matched by exact name, then by the bare architecture name), else a
    ``family`` column of ``generalization``, else :func:`family_of` with ``rule``. A model
    missing from an explicit families table is an error (name it there).

    Parameters
    ----------
    models : sequence of str
        Model ids.
    families : path-like, DataFrame, mapping or None
        An explicit families table (:func:`read_families`).
    generalization : DataFrame or None
        A generalization table (:func:`read_generalization`), used when it has a ``family`` column.
    rule : str, callable or None
        The rule of :func:`family_of`.

    Returns
    -------
    families : list of str
        One family per model, in the order of ``models``.
    source : {"file", "generalization", "rule"}
        Where the families came from.
    """
    models = [str(m) for m in models]
    if families is not None:
        table = read_families(families)
        out, missing = [], []
        for m in models:
            f = table.get(m, table.get(_bare_name(m)))
            (missing.append(m) if f is None else out.append(f))
        if missing:
            raise InputError(f"the families table has no family for {len(missing)} model(s): {missing[:5]} — add rows 'model,family'")
        return out, "file"
    if generalization is not None and "family" in generalization:
        gen = _match_generalization(models, generalization)
        fam = gen["family"] if "family" in gen else pd.Series([None] * len(models))
        if fam.notna().all() and (fam.astype(str).str.len() > 0).all():
            return fam.astype(str).tolist(), "generalization"
        missing = [m for m, f in zip(models, fam) if pd.isna(f) or not str(f)]
        warnings.warn(f"the generalization table has no family for {missing[:5]}: families from the rule on model ids instead",
                      RuntimeWarning, stacklevel=2)
    return [family_of(m, rule) for m in models], "rule"


# --------------------------------------------------------------------------- data sources
def check_data_sources(scores: pd.DataFrame, allow_mixed: bool = False) -> tuple[dict[str, str], list[str]]:
    """Each benchmark's data source and warnings; refuse to mix ``real`` with ``synthetic``.

    A table without a ``data_source`` column (written before it existed) is read as ``unknown``.
    Unknown rows mix with either kind, with a warning; real with synthetic is an
    :class:`~brainlid.errors.InputError` unless ``allow_mixed``.

    Parameters
    ----------
    scores : DataFrame
        Score table (columns ``benchmark`` and, when recorded, ``data_source``).
    allow_mixed : bool
        Accept real and synthetic rows together (with a note).

    Returns
    -------
    sources : dict
        Benchmark → data source; a benchmark with rows of several sources gets the least
        trustworthy one (synthetic, then unknown).
    notes : list of str
        The warnings issued, in words.
    """
    if "data_source" in scores:
        src = scores["data_source"].astype("string").fillna("unknown").replace("", "unknown")
    else:
        src = pd.Series(["unknown"] * len(scores), index=scores.index, dtype="string")
    kinds = sorted(set(src))
    notes: list[str] = []
    if {"real", "synthetic"} <= set(kinds):
        syn = sorted(set(scores.loc[src == "synthetic", "benchmark"].astype(str)))
        if not allow_mixed:
            raise InputError(
                f"the scores mix real and synthetic data ({int((src == 'synthetic').sum())} synthetic rows, e.g. "
                f"{', '.join(syn[:3])}): analyse them apart (--benchmark) or pass --allow-mixed-sources")
        notes.append(f"real and SYNTHETIC data mixed on request (synthetic benchmarks: {', '.join(syn[:5])})")
    if "unknown" in kinds and len(kinds) > 1:
        notes.append(f"{int((src == 'unknown').sum())} score rows have an unknown data source (tables written before "
                     "data sources were recorded) and are analysed together with "
                     + " and ".join(k for k in kinds if k != "unknown") + " rows")
    for n in notes:
        warnings.warn(n, RuntimeWarning, stacklevel=3)
    rank = {"synthetic": 0, "unknown": 1, "real": 2}
    per_bench: dict[str, str] = {}
    for b, v in zip(scores["benchmark"].astype(str) if "benchmark" in scores else [], src):
        if b not in per_bench or rank.get(v, 1) < rank.get(per_bench[b], 1):
            per_bench[b] = str(v)
    return per_bench, notes


