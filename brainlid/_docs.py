"""Shared parameter documentation (nilearn's ``fill_doc`` habit).

Write ``%(name)s`` in a docstring and decorate the function with :func:`fill_doc`;
the text for ``name`` comes from :data:`DOCS`, so a parameter used in many places is
described once. Modules may add their own entries with ``DOCS.setdefault``.
"""

from __future__ import annotations

DOCS: dict[str, str] = {
    "X": """X : array-like of shape (n_samples, n_features)
        Data points as rows. Converted to float32 (float16/integer input is upcast);
        rows with NaN or inf are rejected with their indices.""",
    "k": """k : int
        Number of nearest neighbours (self excluded); must satisfy 2 <= k <= n_samples - 1.""",
    "memory_budget": """memory_budget : int or str or None
        Bytes the blocked computations may use for their temporary blocks, e.g.
        ``512_000_000`` or ``"512MB"``; ``None`` uses the default (``BRAINLID_MEMORY_BUDGET``
        or 512 MB).""",
    "seed": """seed : int or None
        Seed of the random number generator; the same seed gives the same result.""",
    "backend": """backend : {"auto", "numpy", "torch", "torch_cuda"}
        Array backend (see :mod:`brainlid.backend`).""",
    "root": """root : path-like or None
        Dataset root. Default: ``$BRAINLID_DATA/<folder>``, else ``~/brainlid_data/<folder>``
        (see :mod:`brainlid.config`).""",
    "stimulus_ids": """stimulus_ids : array-like of shape (n_stimuli,)
        Identifiers of the stimuli, one per row; data are joined on them, never on row order.""",
    # statistics across models (brainlid.stats, brainlid.analysis)
    "models_xy": """x, y : array-like of shape (n_models,)
        One value per model; non-finite values are an error (drop those models first).""",
    "corr_method": """method : {"pearson", "spearman"}
        Pearson's r, or Spearman's rho (Pearson's r of the ranks, average ranks for ties).""",
    "values_y": """values : array-like of shape (n_models, n_K)
        The measure (e.g. mean LID) per model and K.
    y : array-like of shape (n_models,)
        The other variable (e.g. brain alignment).""",
    "groups": """groups : array-like of shape (n_models,) or None
        Family label per model; None makes every model its own family.""",
    "n_boot": """n_boot : int
        Number of bootstrap replicates (>= 100).""",
    "n_perm": """n_perm : int
        Number of permutations (>= 100).""",
    "level": """level : float
        Coverage of the interval, in (0, 1) (0.95: a 95 % interval).""",
    # the across-model analysis (brainlid.analysis: analyze and model_table)
    "analysis_tables": """scores, geometry : DataFrame
        Tidy score and geometry tables (:mod:`brainlid.scoring.tables`).""",
    "analysis_generalization": """generalization : path-like, DataFrame or None
        Accuracies (:func:`brainlid.analysis.read_generalization`); its ``param_count``/``n_params``
        column gives the parameter counts for the partial correlations.""",
    "analysis_selection": """k : int
        The K fixed in advance for the headline LID (default :data:`brainlid.geometry.DEFAULT_K`).
    estimator : str
        Local estimator in the geometry table (default ``"mle"``).
    layer : {"last", "selected"} or str
        The model's final extracted layer, the layer chosen on the validation split of the first
        brain benchmark, or a layer name.
    stimulus_set : str or None
        The LID stimulus set (default: the one measured for the most models).
    metric : str or None
        Brain-score metric (default ``encoding_r2`` if present).
    value : {"value", "normalised"}
        Raw or ceiling-normalised brain scores.
    reference : str or None
        Reference model for ``model_model_ref`` targets.
    include_baselines : bool
        Keep the baselines (pixels, random weights, shuffled) among the models (families by the
        rule) instead of only listing them apart.
    families : path-like, DataFrame, mapping or None
        Model families (CSV ``model,family``); default: a ``family`` column of the generalization
        table, else ``family_rule`` on the model ids (:func:`brainlid.analysis.assign_families`).
    family_rule : str, callable or None
        Regular expression (default :data:`brainlid.analysis.DEFAULT_FAMILY_RULE`: the architecture
        prefix), a callable ``model → family``, or ``"model"`` (every model its own family: the
        models are treated as independent; then only pooled rows are reported).""",
    "analysis_report": """title : str
        Title of the report.
    notes : list of str or None
        Notes shown at the top of the report.
    extra_figures : dict or None
        Figure name → PNG path: more figures for the report (e.g. brain maps).""",
    # figures (brainlid.plotting)
    "stem": """stem : path-like or None
        Save the figure as ``<stem>.png`` and ``<stem>.svg`` (:func:`brainlid.plotting.save_figure`);
        None only draws it.""",
    "families": """families : mapping or sequence or None
        Model → family (a mapping, or a sequence aligned with the models): a family's models share
        a hue and differ in marker (:func:`brainlid.plotting.model_styles`).""",
    "scores": """scores : DataFrame
        Score table, one row per (model, layer, benchmark, subject, roi, metric[, time]) with
        columns ``split``, ``value``, ``selected`` (:mod:`brainlid.scoring.tables`).""",
}


def fill_doc(obj):
    """Decorator: replace ``%(name)s`` placeholders in ``obj.__doc__`` with :data:`DOCS` entries."""
    if obj.__doc__:
        obj.__doc__ = obj.__doc__ % _IndentedDocs(obj.__doc__)
    return obj


class _IndentedDocs(dict):
    def __init__(self, doc: str):
        super().__init__()
        self._doc = doc

    def __missing__(self, key):
        text = DOCS[key]
        # indent continuation lines to the placeholder's indentation
        for line in self._doc.splitlines():
            if f"%({key})s" in line:
                indent = line[: len(line) - len(line.lstrip())]
                return text.replace("\n        ", "\n" + indent + "    ")
        return text
