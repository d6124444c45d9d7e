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
