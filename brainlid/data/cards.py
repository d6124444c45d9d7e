"""Dataset cards: what each supported dataset is, where its files live, and how to get it.

Conventions (every dataset module follows them; THINGS loaders included)
------------------------------------------------------------------------
**Card files.** One TOML file per dataset, ``datasets/<name>.toml`` at the top of the
repository (shipped inside the package as ``brainlid/datasets/*.toml`` through the
``brainlid/datasets -> ../datasets`` symlink, which setuptools copies into wheels).
Keys (all strings unless noted):

``name``, ``title``, ``folder`` (sub-folder under ``$BRAINLID_DATA``), ``loader`` (module path,
e.g. ``"brainlid.data.nsd"``), ``homepage``, ``citation`` (BibTeX), ``terms`` (terms of use),
``obtain`` (official instructions and sizes), ``returns`` (what the loader returns, one line);
``[subjects]`` with ``ids`` (list of int) and optional per-subject lists (e.g. ``n_sessions``);
``[spaces]``: one entry per space, a short description;
``[files]``: named path templates relative to the dataset root, formatted with
:meth:`DatasetCard.relpath` (placeholders such as ``{subject:02d}``, ``{space}``, ``{session:02d}``,
``{hemi}``, ``{roi}``, ``{beta}``) — loaders build every path from these templates, so a card is
the single source of truth for the layout;
``[fetch]`` with ``base_url`` (default: the official public location; ``""`` when the data are
not publicly downloadable), ``needs_terms`` (bool), ``common`` (file keys fetched once),
``per_space.<space>`` (file keys fetched per subject and space), ``rois`` (ROI file names for
``{roi}``), ``hemis``, ``optional`` (file keys fetched only with ``--with-optional``, e.g. NSD's
37 GB image brick), ``may_be_absent`` (glob patterns of relative paths whose 404 is reported, not
fatal), optional ``sha256`` table (relative path → hex digest) and ``defaults`` (values for other
placeholders, e.g. ``beta``).

**Loader modules** expose

* ``load(root=None, subject=..., ...) -> Loaded`` — a :class:`Loaded` (``stimuli``, ``brain``,
  optional ``extra``) that unpacks as ``stimuli, brain = load(...)``;
* ``check(root=None, subject=None) -> pandas.DataFrame`` with the columns :data:`CHECK_COLUMNS`
  (``subject``, ``space``, ``item``, ``status`` ∈ present / missing / unreadable, ``detail``);
  build rows with :func:`probe` and the frame with :func:`check_frame`;
* optionally ``summarize(check_df) -> list[str]``: one line per subject saying what the copy
  allows (``"subject 3: func1pt8mm 32 sessions, nsdgeneral, ncsnr present"``), printed by
  ``brainlid datasets check``.

**Missing files** raise :class:`~brainlid.errors.DatasetNotFoundError` built by
:meth:`DatasetCard.not_found`, which names the file, the card and how to get it.
"""

from __future__ import annotations

import importlib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd

from ..config import data_root
from ..errors import DatasetNotFoundError, FileFormatError, InputError

__all__ = [
    "DatasetCard",
    "Loaded",
    "CHECK_COLUMNS",
    "list_cards",
    "get_card",
    "cards_dir",
    "probe",
    "check_frame",
]

CHECK_COLUMNS = ["subject", "space", "item", "status", "detail"]
_REQUIRED = ("name", "title", "folder", "loader", "citation", "terms", "obtain", "homepage", "files")


def cards_dir() -> Path:
    """Folder holding the ``*.toml`` cards (``brainlid/datasets``, i.e. the repository's ``datasets/``)."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here / "datasets", here.parent / "datasets"):
        if cand.is_dir() and any(cand.glob("*.toml")):
            return cand
    raise FileFormatError(f"no dataset cards found (looked in {here / 'datasets'} and {here.parent / 'datasets'})")


@dataclass(frozen=True)
class DatasetCard:
    """One dataset card (see the module docstring for the keys)."""

    name: str
    title: str
    folder: str
    loader: str
    citation: str
    terms: str
    obtain: str
    homepage: str
    files: dict[str, str]
    subjects: dict[str, Any] = field(default_factory=dict)
    spaces: dict[str, str] = field(default_factory=dict)
    fetch: dict[str, Any] = field(default_factory=dict)
    returns: str = ""
    path: Path | None = None

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "DatasetCard":
        path = Path(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise FileFormatError(f"cannot read dataset card {path}: {exc}") from exc
        missing = [k for k in _REQUIRED if k not in raw]
        if missing:
            raise FileFormatError(f"dataset card {path} lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__ if f != "path"}
        return cls(**{k: v for k, v in raw.items() if k in known}, path=path)

    # paths ----------------------------------------------------------------------------------------
    def root(self, root: str | os.PathLike | None = None, *, must_exist: bool = True) -> Path:
        """The dataset root (``root``, else ``$BRAINLID_DATA/<folder>``, else ``~/brainlid_data/<folder>``)."""
        path = data_root(self.folder, root)
        if must_exist and not path.is_dir():
            how = "passed as root=" if root is not None else "resolved from $BRAINLID_DATA / ~/brainlid_data"
            blocker = next((p for p in (path, *path.parents) if p.exists()), None)
            if blocker is not None and not blocker.is_dir():
                what = "is a file" if blocker == path else f"lies under {blocker}, which is a file"
                raise InputError(f"{self.title} root {path} {what}, not a folder ({how}); give the dataset's folder")
            raise DatasetNotFoundError(
                f"{self.title} root folder does not exist: {path} ({how}). {self.how_to_get()}"
            )
        return path

    def relpath(self, key: str, **fields) -> str:
        """Relative path of file ``key`` with its placeholders filled from ``fields``."""
        if key not in self.files:
            raise InputError(f"dataset card {self.name!r} has no file template {key!r}")
        fields = {**self.fetch.get("defaults", {}), **fields}
        try:
            return self.files[key].format(**fields)
        except KeyError as exc:
            raise InputError(f"file template {key!r} of card {self.name!r} needs {exc.args[0]!r}") from exc

    def file(self, root: Path, key: str, **fields) -> Path:
        """Absolute path of file ``key`` under ``root``."""
        return Path(root) / self.relpath(key, **fields)

    def how_to_get(self, subject: int | None = None, space: str | None = None) -> str:
        hint = f"See `brainlid datasets info {self.name}`"
        if self.fetch.get("base_url"):
            sub = f" --subject {subject}" if subject is not None else " --subject N"
            sp = f" --space {space}" if space else (" --space SPACE" if self.spaces else "")
            hint += f", or download with `brainlid datasets fetch {self.name} --root PATH{sub}{sp} --accept-terms`"
        return hint + "."

    def not_found(self, path: str | os.PathLike, what: str = "file", *, subject=None, space=None, extra: str = "") -> DatasetNotFoundError:
        """The error for a missing file: names it, the card, and how to get it."""
        more = f" {extra.strip()}" if extra else ""
        return DatasetNotFoundError(
            f"{self.title}: {what} not found: {path} (dataset card {self.name!r}).{more} {self.how_to_get(subject, space)}"
        )

    def require(self, path: Path, what: str = "file", **kw) -> Path:
        """Return ``path`` if it exists, else raise :meth:`not_found`."""
        if not Path(path).exists():
            raise self.not_found(path, what, **kw)
        return Path(path)

    def module(self):
        """The loader module named by the card."""
        return importlib.import_module(self.loader)

    def info_text(self) -> str:
        """A human-readable description (``brainlid datasets info``)."""
        lines = [f"{self.title} ({self.name})", f"  homepage: {self.homepage}", f"  folder:   $BRAINLID_DATA/{self.folder}",
                 f"  loader:   {self.loader}"]
        if self.returns:
            lines.append(f"  returns:  {self.returns}")
        if self.subjects.get("ids"):
            lines.append(f"  subjects: {', '.join(map(str, self.subjects['ids']))}")
        if self.spaces:
            lines.append("  spaces:")
            lines += [f"    {k}: {v}" for k, v in self.spaces.items()]
        lines += ["", "How to obtain:", _indent(self.obtain), "", "Terms of use:", _indent(self.terms), "",
                  "Expected files (relative to the root):"]
        lines += [f"  {k}: {v}" for k, v in self.files.items()]
        base = self.fetch.get("base_url")
        lines += ["", f"Download base URL: {base}" if base else "No public download URL: obtain the data as described above.",
                  "", "Citation:", _indent(self.citation)]
        return "\n".join(lines)


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in str(text).strip().splitlines())


@dataclass
class Loaded:
    """What a dataset loader returns: the stimuli, the brain data and anything dataset-specific.

    Unpacks as ``stimuli, brain = loaded`` (``extra`` is left out of the unpacking).

    Attributes
    ----------
    stimuli : StimulusSet
        One stimulus per row of ``brain.responses``, same ids in the same order.
    brain : BrainData or None
        Responses (None for stimulus-only sets, e.g. Algonauts test images).
    extra : dict
        Dataset-specific additions (e.g. ``{"test_stimuli": StimulusSet}`` for Algonauts 2023).
    """

    stimuli: Any
    brain: Any
    extra: dict = field(default_factory=dict)

    def __iter__(self) -> Iterator:
        yield self.stimuli
        yield self.brain

    def __getitem__(self, key):
        return (self.stimuli, self.brain)[key]

    def __len__(self) -> int:
        return 2


_CACHE: dict[str, DatasetCard] | None = None


def _all_cards() -> dict[str, DatasetCard]:
    global _CACHE
    if _CACHE is None:
        cards = {}
        for p in sorted(cards_dir().glob("*.toml")):
            card = DatasetCard.from_file(p)
            cards[card.name] = card
        _CACHE = cards
    return _CACHE


def list_cards() -> list[DatasetCard]:
    """Every dataset card, sorted by name."""
    return [c for _, c in sorted(_all_cards().items())]


def get_card(name: str) -> DatasetCard:
    """The card called ``name`` (an unknown name raises InputError listing the valid ones)."""
    cards = _all_cards()
    if name not in cards:
        raise InputError(f"unknown dataset {name!r}; available: {', '.join(sorted(cards))}")
    return cards[name]


# ----------------------------------------------------------------------------------- check helpers
def probe(path: Path, reader: Callable[[Path], str | None] | None = None) -> tuple[str, str]:
    """Status of one expected file: ``("present", detail)``, ``("missing", path)`` or ``("unreadable", why)``.

    ``reader(path)`` opens the file cheaply (headers only) and returns a detail string (e.g. the
    shape); any exception it raises marks the file unreadable.
    """
    path = Path(path)
    if not path.exists():
        return "missing", str(path)
    if reader is None:
        return "present", f"{path.stat().st_size} bytes" if path.is_file() else "folder"
    try:
        return "present", str(reader(path) or "")
    except Exception as exc:  # noqa: BLE001 - any failure to read is 'unreadable'
        return "unreadable", f"{type(exc).__name__}: {exc}".splitlines()[0]


def check_frame(rows: list[dict]) -> pd.DataFrame:
    """The check table with columns :data:`CHECK_COLUMNS` (``subject`` is an int or ``None`` for shared files)."""
    df = pd.DataFrame(rows, columns=CHECK_COLUMNS)
    df["subject"] = df["subject"].astype("Int64")
    return df
