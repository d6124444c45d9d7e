"""The one schema for everything a submitter writes: manifest JSON, metadata, layer names, stimulus ids.

Every value a submitter controls passes through this module once, at upload (the worker runs
the same code again), so nothing stored can later make a page, an API route, a CSV or a static
build fail:

* :func:`loads_json` — a JSON reader with a depth limit (:data:`MAX_DEPTH`, checked *before*
  parsing, so a manifest nested 60,000 deep is a clear error, not a ``RecursionError``), no
  ``NaN``/``Infinity`` constants and no duplicated keys;
* :func:`check_text` — a string of valid Unicode (no lone UTF-16 surrogates), without NUL,
  control characters (a line break only where a field allows several lines), bidirectional
  overrides or isolates (U+202A–U+202E, U+2066–U+2069), with at least one visible character
  and at most ``max_len`` characters;
* :func:`check_metadata` — :data:`METADATA_SCHEMA`: the known fields, ``model_name``
  required, ``parameters`` an integer in ``[0, MAX_PARAMETERS]``, ``url`` an http(s) URL;
* :func:`check_stimulus_ids` — all integers in the int64 range, or all strings (checked as
  text); :func:`check_ids_kind` — the same kind as a benchmark's published ids;
* :func:`visible` and :func:`public_reason` — the display side: any text (also text stored
  before these rules) with invisible or direction-changing characters escaped, and rejection
  reasons with server paths removed.

Every error is a :class:`SchemaError` whose message names the field (``metadata.parameters``,
``layers[3].name``, ``stimulus_ids[17]``).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ..errors import InputError

__all__ = [
    "SchemaError", "MAX_DEPTH", "MAX_TEXT", "MAX_NAME", "MAX_PARAMETERS", "METADATA_SCHEMA", "METADATA_FIELDS",
    "TextField", "IntField", "loads_json", "check_text", "check_metadata", "check_stimulus_ids", "check_ids_kind",
    "visible", "public_reason",
]

#: Deepest nesting of arrays/objects in ``manifest.json`` (a valid manifest needs 3).
MAX_DEPTH = 16
#: Longest free text (characters) of a metadata field.
MAX_TEXT = 2000
#: Longest name (characters): model name, team, layer name, string stimulus id, benchmark id.
MAX_NAME = 200
#: Largest ``parameters`` accepted (10 trillion weights; the largest published models have ~2e12).
MAX_PARAMETERS = 10**13
_INT64 = (-(2**63), 2**63 - 1)

#: Bidirectional embeddings, overrides and isolates: they reorder the text around them.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: Characters that draw nothing although they are not Unicode format/space characters.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800")


class SchemaError(InputError):
    """A value that breaks the submission schema; the message names the field."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field} {problem}")


# --------------------------------------------------------------------------- JSON
# a JSON string token, or one bracket: brackets inside strings are skipped
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)


def json_depth(text: str) -> int:
    """Deepest nesting of arrays/objects in a JSON text (brackets inside strings ignored); linear time."""
    depth = deepest = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"key {visible(k)!r} appears twice in one object")
        out[k] = v
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def loads_json(raw: bytes | str, *, what: str = "manifest.json", max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text written by a submitter.

    Raises :class:`SchemaError` (naming ``what``) for text that is not UTF-8, nested deeper
    than ``max_depth``, holds ``NaN``/``Infinity``, a duplicated key, or is not JSON.
    """
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SchemaError(what, f"is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise SchemaError(what, f"is nested {depth} levels deep; the limit is {max_depth}")
    try:
        return json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise SchemaError(what, f"is not valid JSON ({visible(str(exc))[:200]})") from None


# --------------------------------------------------------------------------- text
def _invisible(ch: str) -> bool:
    return ch.isspace() or ch in _BLANKS or unicodedata.category(ch) in ("Cf", "Zs", "Zl", "Zp", "Mn", "Me")


def check_text(value: Any, field: str, *, max_len: int = MAX_TEXT, multiline: bool = False,
               allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string a page can show as it is; else raise :class:`SchemaError`.

    Parameters
    ----------
    value : the submitted value
    field : its name in messages (``metadata.model_name``)
    max_len : most characters (code points)
    multiline : allow line breaks (``\\n``, ``\\r\\n``) and tabs (descriptions)
    allow_empty : accept ``""``
    """
    if not isinstance(value, str):
        raise SchemaError(field, f"must be a string, got {_json_type(value)}")
    if not value:
        if allow_empty:
            return value
        raise SchemaError(field, "is empty")
    if len(value) > max_len:
        raise SchemaError(field, f"is longer than {max_len} characters ({len(value)})")
    for i, ch in enumerate(value):
        o = ord(ch)
        if 0xD800 <= o <= 0xDFFF:
            raise SchemaError(field, f"holds a lone UTF-16 surrogate U+{o:04X} at position {i} (not valid Unicode)")
        if o == 0:
            raise SchemaError(field, f"holds a NUL character at position {i}")
        if ch in BIDI_CONTROLS:
            raise SchemaError(field, f"holds the bidirectional control U+{o:04X} at position {i} (it reorders the text around it)")
        if unicodedata.category(ch) == "Cc" and not (multiline and ch in "\n\r\t"):
            raise SchemaError(field, f"holds the control character U+{o:04X} at position {i}")
        if o in (0xFFFE, 0xFFFF):
            raise SchemaError(field, f"holds the noncharacter U+{o:04X} at position {i}")
    if all(_invisible(ch) for ch in value):
        raise SchemaError(field, "has no visible character (only spaces or zero-width characters)")
    return value


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, np.integer)):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, Mapping):
        return "an object"
    return type(v).__name__


# --------------------------------------------------------------------------- metadata
@dataclass(frozen=True)
class TextField:
    """A free-text metadata field."""

    max_len: int = MAX_TEXT
    multiline: bool = False
    required: bool = False
    url: bool = False

    def check(self, value, field: str) -> str:
        """The value as clean text (a URL checked when ``url``); :class:`SchemaError` naming ``field`` otherwise."""
        text = check_text(value, field, max_len=self.max_len, multiline=self.multiline, allow_empty=not self.required)
        if self.url and text:
            if not re.match(r"^https?://[^\s/?#]+", text) or any(c.isspace() for c in text):
                raise SchemaError(field, f"must be an http:// or https:// URL without spaces, got {visible(text)[:80]!r}")
        return text


@dataclass(frozen=True)
class IntField:
    """An integer metadata field in ``[lo, hi]``."""

    lo: int = 0
    hi: int = MAX_PARAMETERS
    what: str = ""

    def check(self, value, field: str) -> int:
        """The value as an ``int`` in ``[lo, hi]``; :class:`SchemaError` naming ``field`` otherwise."""
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise SchemaError(field, f"must be an integer{self.what}, got {_json_type(value)}")
        v = int(value)
        if not self.lo <= v <= self.hi:
            shown = str(v) if abs(v) < 10**30 else f"a {len(str(abs(v)))}-digit number"
            raise SchemaError(field, f"must be an integer from {self.lo} to {self.hi:,}{self.what}, got {shown}")
        return v


#: The metadata a submitter may give; ``model_name`` is required, the rest optional.
METADATA_SCHEMA: dict[str, TextField | IntField] = {
    "model_name": TextField(max_len=MAX_NAME, required=True),
    "team": TextField(max_len=MAX_NAME),
    "parameters": IntField(0, MAX_PARAMETERS, " (number of weights)"),
    "training_data": TextField(),
    "url": TextField(url=True),
    "description": TextField(multiline=True),
    "layers_note": TextField(multiline=True),
}
METADATA_FIELDS = tuple(METADATA_SCHEMA)


def check_metadata(metadata: Any, field: str = "metadata") -> dict:
    """Validate a metadata object against :data:`METADATA_SCHEMA`; return a clean copy.

    ``None`` or ``""`` for an optional field means "not given" (dropped).
    """
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, Mapping):
        raise SchemaError(field, f"must be a JSON object, got {_json_type(metadata)}")
    unknown = sorted(visible(str(k)) for k in metadata if k not in METADATA_SCHEMA)
    if unknown:
        raise SchemaError(field, f"has unknown field(s) {unknown[:5]}; known: {', '.join(METADATA_FIELDS)}")
    out = {}
    for key, spec in METADATA_SCHEMA.items():
        v = metadata.get(key)
        if (v is None or v == "") and not getattr(spec, "required", False):
            continue
        if v is None and getattr(spec, "required", False):
            raise SchemaError(f"{field}.{key}", "is required (the name shown on the board)")
        out[key] = spec.check(v, f"{field}.{key}")
    return out


# --------------------------------------------------------------------------- stimulus ids
def check_stimulus_ids(values: Any, field: str = "stimulus_ids") -> np.ndarray:
    """Stimulus ids as an int64 array (all integers in the int64 range) or a str array (all strings).

    Raises :class:`SchemaError` naming the first offending element, for a mix of kinds, and for
    duplicated ids.
    """
    if not isinstance(values, (list, tuple)) or not values:
        raise SchemaError(field, "must be a non-empty JSON list")
    first = values[0]
    ints = isinstance(first, int) and not isinstance(first, bool)
    for i, v in enumerate(values):
        if ints:
            if isinstance(v, bool) or not isinstance(v, int):
                raise SchemaError(f"{field}[{i}]", f"is {_json_type(v)}; the ids before it are integers (one kind for all ids)")
            if not _INT64[0] <= v <= _INT64[1]:
                raise SchemaError(f"{field}[{i}]", "is outside the 64-bit integer range (-2**63 to 2**63-1)")
        else:
            if not isinstance(v, str):
                raise SchemaError(f"{field}[{i}]", f"is {_json_type(v)}; stimulus ids are all integers or all strings")
            check_text(v, f"{field}[{i}]", max_len=MAX_NAME)
    arr = np.asarray(values, dtype=np.int64) if ints else np.asarray(values, dtype=str)
    uniq, counts = np.unique(arr, return_counts=True)
    if uniq.size != arr.size:
        dup = uniq[counts > 1]
        raise SchemaError(field, f"holds {dup.size} duplicated id(s), e.g. {[visible(str(d)) for d in dup[:3]]}")
    return arr


def _kind(arr: np.ndarray) -> str:
    return "integers" if np.asarray(arr).dtype.kind in "iu" else "strings"


def check_ids_kind(got: np.ndarray, want: np.ndarray, bench: str, field: str = "stimulus_ids") -> None:
    """Raise :class:`SchemaError` unless ``got`` holds the same kind of ids (integers/strings) as ``want``."""
    if _kind(got) != _kind(want):
        raise SchemaError(field, f"are {_kind(got)}, but benchmark {bench}'s published stimulus ids are {_kind(want)} "
                                 f"(expected type: {'integer' if _kind(want) == 'integers' else 'string'})")


# --------------------------------------------------------------------------- display
_HIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufeff\ufffe\uffff]")


def visible(text: str) -> str:
    """``text`` with control characters, lone surrogates and bidi controls shown as ``\\uXXXX``.

    For display of any stored text, including text stored before the schema existed: the
    result always encodes as UTF-8 and cannot reorder the page around it.
    """
    text = str(text)
    return _HIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


# an absolute path (POSIX, ~/…, or a drive letter) of two or more components
_PATH = re.compile(r"(?<![\w.:/\\-])(?:~|[A-Za-z]:)?[/\\](?:[^\s'\"/\\:,;()\[\]]+[/\\])+[^\s'\"/\\:,;()\[\]]*")
MAX_REASON = 2000


def public_reason(reason: Any) -> str:
    """A rejection reason fit for the public: server paths replaced by ``<path>``, text made visible, length capped."""
    text = visible(str(reason))
    text = _PATH.sub("<path>", text)
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def safe_float(v) -> float | None:
    """``float(v)``, or None for missing, NaN, infinite or unconvertible values (huge integers included)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return None if not math.isfinite(f) else f
