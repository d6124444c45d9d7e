"""Layer selection: which of a model's modules (or a features file's layers) to read.

A selector is an exact name, a glob (``"features.*"``, ``"blocks.[0-3]"``; ``*`` and ``?`` do not
cross dots, ``**`` does) or a regex prefixed ``"re:"`` searched anywhere in the name; a string may
hold several separated by commas. Pure string matching: nothing here runs or imports a model.
"""

from __future__ import annotations

import difflib
import re

from ..errors import InputError

__all__ = ["layer_selectors", "resolve_layers", "resolve_layer_names"]


def _module_names(module) -> list[str]:
    return [n for n, _ in module.named_modules() if n]


def layer_selectors(layers) -> list[str]:
    """Layer selectors as a list: a string is split at commas (blanks dropped); None gives ``[]``."""
    if isinstance(layers, str):
        return [t for t in (t.strip() for t in layers.split(",")) if t]
    return [str(t) for t in (layers or [])]


def resolve_layers(module, layers) -> list[str]:
    """Resolve layer selectors to module names, in the model's module order.

    Each selector is an exact module name, a glob (``"features.*"``, ``"blocks.[0-3]"``; ``*`` and
    ``?`` do not cross dots, ``**`` does) or a regex prefixed ``"re:"`` and searched anywhere in
    the name (``"re:layer\\d$"``); a string may hold several separated by commas. An unknown
    name raises :class:`~brainlid.errors.InputError` listing close matches.
    """
    names = _module_names(module)
    if not names:
        raise InputError("the model has no sub-modules to hook")
    if not layer_selectors(layers):
        raise InputError("no layers requested; run list_layers(model) / `brainlid layers MODEL` to see them")
    return resolve_layer_names(names, layers)


def resolve_layer_names(names, layers, *, given_order: bool = False, what: str = "the model",
                        unit: str = "module") -> list[str]:
    """Resolve layer selectors (names, globs, ``re:`` regexes; see :func:`resolve_layers`) against ``names``.

    Parameters
    ----------
    names : sequence of str
        The available layer names, in their source's order.
    layers : str or sequence of str
    given_order : bool
        False: the chosen names in ``names`` order (a model's depth order); True: in the order of
        the selectors (a glob's hits in ``names`` order at its place) — precomputed features,
        whose files may not keep the layers' order.
    what, unit : str
        How messages name the source ("the model", "the features") and its entries.

    Returns
    -------
    list of str — without repeats.
    """
    names = list(names)
    layers = layer_selectors(layers)
    if not layers:
        raise InputError(f"no layers requested from {what}")
    chosen: dict[str, None] = {}
    index = {n: i for i, n in enumerate(names)}
    for sel in layers:
        sel = str(sel)
        if sel in index:
            hits = [sel]
        elif sel.startswith("re:"):
            try:
                rx = re.compile(sel[3:])
            except re.error as exc:
                raise InputError(f"bad layer regex {sel!r}: {exc}") from exc
            hits = [n for n in names if rx.search(n)]
        elif any(c in sel for c in "*?["):
            rx = _glob_regex(sel)
            hits = [n for n in names if rx.fullmatch(n)]
        else:
            close = difflib.get_close_matches(sel, names, n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else f"; {what} has {len(names)} {unit}s, e.g. {', '.join(names[:6])}"
            raise InputError(f"unknown layer {sel!r}{hint}")
        if not hits:
            raise InputError(f"layer pattern {sel!r} matches no {unit}; {what} has e.g. {', '.join(names[:8])}")
        chosen.update(dict.fromkeys(hits))
    return list(chosen) if given_order else sorted(chosen, key=index.__getitem__)


def _glob_regex(pattern: str) -> "re.Pattern":
    """Glob over dotted module names: ``*`` and ``?`` stay within one name part, ``**`` crosses dots."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append(r"[^.]*")
        elif c == "?":
            out.append(r"[^.]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise InputError(f"unclosed '[' in layer pattern {pattern!r}")
            body = pattern[i + 1 : j]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = j + 1
            continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def _pattern_hits(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.search(pattern[3:], name) is not None
    return _glob_regex(pattern).fullmatch(name) is not None

