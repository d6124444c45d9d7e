"""Helpers the command modules share: output paths checked first, repeated id options, result tables, lazy defaults.

* :func:`check_output_dir` / :func:`check_output_file` — commands call these on their
  ``--out``/``--store``-like options first, so a wrong path fails in a second with one line naming
  the option and what the path is, not after minutes of extraction;
* :func:`split_ids` — benchmark ids given as a repeated option, each value holding one or more;
* :func:`echo_table` — a score-like DataFrame printed as a rich table;
* :class:`LazyDefaultOption` and :class:`LazyChoice` — an option default or choice list read from
  the library (one source) only when help is shown or the command runs, so ``brainlid --help``
  imports click and the standard library alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from ..errors import InputError


def _nearest_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def _check_creatable(path: Path, option: str) -> None:
    """The missing ``path`` could be created: its nearest existing ancestor is a writable folder."""
    anc = _nearest_existing(path.parent if path.parent != path else path)
    if not anc.is_dir():
        raise InputError(f"{option} {path}: {anc} is a file, not a folder")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create it, the folder {anc} is not writable")


def check_output_dir(path: str | os.PathLike | None, option: str) -> None:
    """Fail unless ``path`` is a folder or could be created as one (None: nothing to check).

    Raises
    ------
    InputError
        ``path`` is a file, lies under a file, or under a folder that is not writable.
    """
    if path is None:
        return
    path = Path(path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option} {path} is a file, not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            raise InputError(f"{option} {path}: the folder is not writable")
        return
    _check_creatable(path, option)


def check_output_file(path: str | os.PathLike | None, option: str, example: str, magic: bytes = b"", kind: str = "") -> None:
    """Fail unless ``path`` is a file or could be created as one (None: nothing to check).

    ``example`` is a file name suggested when ``path`` is a folder (e.g. ``"results.sqlite"``);
    an existing non-empty file must start with ``magic`` (when given), else it is not a ``kind``
    and is left alone (SQLite, for one, would silently take over a small text file).

    Raises
    ------
    InputError
        ``path`` is a folder, another kind of file, lies under a file, or under a folder that is
        not writable.
    """
    if path is None:
        return
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder, not a file; give a file path such as {path / example}")
    if path.exists():
        if not os.access(path, os.W_OK):
            raise InputError(f"{option} {path}: the file is not writable")
        with open(path, "rb") as fh:
            head = fh.read(len(magic))
        if magic and head and head != magic:
            raise InputError(f"{option} {path} is not {kind or 'the expected kind of file'}; choose another path")
        return
    _check_creatable(path, option)


def split_ids(args: Iterable[str]) -> list[str]:
    """Ids from a repeated option, each value holding one or more separated by spaces or commas.

    ``("a.b c", "d,e")`` → ``["a.b", "c", "d", "e"]``.
    """
    return [b for arg in args for b in arg.replace(",", " ").split()]


def echo_table(df, title: str = "", max_rows: int = 60) -> None:
    """Print the first ``max_rows`` rows of the DataFrame ``df`` as a table (floats to 3 decimals).

    Columns that are empty in every row (e.g. ``time`` for fMRI rows) are left out; a last line
    counts the rows not shown.
    """
    from rich.console import Console  # start-up: rich only when a table is printed
    from rich.table import Table  # start-up: rich

    df = df.loc[:, df.notna().any()]  # e.g. `time` for fMRI rows, `ceiling` where no benchmark has one
    table = Table(title=title or None, show_lines=False)
    for c in df.columns:
        table.add_column(str(c), overflow="fold")
    for rec in df.head(max_rows).itertuples(index=False):
        table.add_row(*[(f"{v:.3f}" if isinstance(v, float) else str(v)) for v in rec])
    Console(width=160).print(table)
    if len(df) > max_rows:
        click.echo(f"... {len(df) - max_rows} more rows")


class LazyDefaultOption(click.Option):
    """A ``click.Option`` whose default comes from ``default_from()``, called when help is shown or the command runs.

    Use it as ``@click.option("--k", cls=LazyDefaultOption, default_from=read_default_k, ...)``
    when the default lives in a library module that ``brainlid --help`` must not import; the help
    text shows the value itself (``[default: 20]``), as a literal default would. A value in the
    context's ``default_map`` still wins.
    """

    def __init__(self, *decls: str, default_from: Callable[[], Any], **attrs: Any) -> None:
        super().__init__(*decls, **attrs)
        self.default_from = default_from

    def get_default(self, ctx: click.Context, call: bool = True) -> Any:
        value = super().get_default(ctx, call=call)
        if value is None or value is getattr(click.core, "UNSET", None):  # nothing set: the library's value
            value = self.default_from()
        return value


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices come from ``choices_from()``, called the first time they are needed.

    For a vocabulary kept by a library registry (e.g. :data:`brainlid.geometry.ESTIMATORS`) that
    ``brainlid --help`` must not import.
    """

    def __init__(self, choices_from: Callable[[], Iterable[str]], case_sensitive: bool = True) -> None:
        self.choices_from = choices_from
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = case_sensitive

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self.choices_from())
        return self._choices

    @choices.setter
    def choices(self, value: Iterable[str]) -> None:
        self._choices = tuple(value)
