"""``brainlid datasets``: list, describe, check and fetch local dataset copies (driven by the dataset cards).

* ``brainlid datasets list`` — every card.
* ``brainlid datasets info NAME`` — citation, terms, how to obtain, expected files.
* ``brainlid datasets check NAME [--root PATH] [--subject N] [--space S] [--json]`` — the loader
  module's ``check()`` table (present / missing / unreadable per subject and space), its
  ``summarize()`` lines and a verdict; the exit code says whether the requested subject/space is
  usable (:data:`CHECK_EXIT_CODES`), so scripts can gate on it.
* ``brainlid datasets fetch NAME --root PATH --subject N --space S --accept-terms [--base-url URL]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import PurePosixPath

import click

from ..errors import InputError


CHECK_EXIT_CODES = {
    0: "usable: every required file of the requested subject/space is present and readable",
    1: "error (unknown dataset, unknown space, a root that is not a folder)",
    2: "usage error (bad option)",
    3: "not usable: a required file is missing or unreadable, or nothing of the requested subject/space was found",
}
EXIT_UNUSABLE = 3


def _optional_items(card) -> set[str]:
    """Item names of files the card's fetch plan calls optional (NSD: the 37 GB image brick)."""
    return {PurePosixPath(card.files[k]).name for k in card.fetch.get("optional", []) if k in card.files}


def usability(df, card, space: str | None = None) -> tuple[bool, list[str]]:
    """Whether a ``check()`` table shows a usable copy, and why not.

    Shared rows (no subject; in datasets without subjects, no subject and no space) must all be
    present. The other rows form (subject, space)
    groups, complete when all their rows are present; the copy is usable when at least one group
    in scope is complete (the table holds only the requested subject when one was asked for;
    ``space`` narrows the scope to that space). Optional files (the card's fetch plan says so,
    or the item is marked "(optional ...)") do not count.

    Returns
    -------
    usable : bool
    problems : list of str
        One line per reason it is not usable (empty when usable).
    """
    optional = _optional_items(card)
    required = df[~(df["item"].isin(optional) | df["item"].str.contains("(optional", regex=False))]
    no_subject = required["subject"].isna()
    # files without a subject are shared by all subjects; in datasets without subjects, their spaces are the groups
    is_shared = no_subject if (~df["subject"].isna()).any() else no_subject & (required["space"] == "")
    problems = [f"{r.item} is {r.status}: {r.detail}" for r in required[is_shared & (required["status"] != "present")].itertuples()]
    rest = required[~is_shared]
    if space is not None:
        rest = rest[rest["space"] == space]
    if rest.empty:
        problems.append(f"nothing of {'space ' + space if space is not None else 'any subject or space'} was found")
    elif not any((g["status"] == "present").all() for _, g in rest.groupby(["subject", "space"], dropna=False)):
        bad = rest[rest["status"] != "present"]
        shown = ", ".join(bad["item"].astype(str).head(3)) + (", ..." if len(bad) > 3 else "")
        problems.append(f"no subject/space is complete: {len(bad)} file(s) missing or unreadable ({shown})")
    return not problems, problems


@click.group()
def datasets() -> None:
    """Dataset cards, local copies and downloads."""


@datasets.command("list")
def list_cmd() -> None:
    """List the supported datasets."""
    from ..data.cards import list_cards  # start-up: numpy/pandas (the data package)

    rows = [(c.name, c.title, c.folder, c.loader) for c in list_cards()]
    width = [max(len(r[i]) for r in rows + [("name", "title", "folder", "loader")]) for i in range(4)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(("name", "title", "folder", "loader"), width)))
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, width)))


@datasets.command("info")
@click.argument("name")
def info_cmd(name: str) -> None:
    """Citation, terms of use, how to obtain and the expected files of dataset NAME."""
    from ..data.cards import get_card  # start-up: numpy/pandas (the data package)

    click.echo(get_card(name).info_text())


_EXIT_HELP = "\n".join(f"  {code}  {text}" for code, text in CHECK_EXIT_CODES.items())


@datasets.command("check", epilog="\b\nExit codes:\n" + _EXIT_HELP)
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root (default: $BRAINLID_DATA/<folder>).")
@click.option("--subject", type=int, default=None, help="Check one subject only.")
@click.option("--space", default=None, help="Judge usability for this space only (see `brainlid datasets info NAME`).")
@click.option("--json", "as_json", is_flag=True, help="Print the table, summary and verdict as JSON.")
@click.pass_context
def check_cmd(ctx: click.Context, name: str, root: str | None, subject: int | None, space: str | None, as_json: bool) -> None:
    """What a local copy of dataset NAME holds: present, missing or unreadable files per subject and space.

    The last line says whether the requested subject (default: every subject found) and space
    (default: any) are usable; the exit code says the same (below).
    """
    from ..data.cards import get_card  # start-up: numpy/pandas (the data package)

    card = get_card(name)
    mod = card.module()
    df = mod.check(root=root, subject=subject)
    known = set(card.spaces) | set(df["space"])
    if space is not None and space not in known:
        raise InputError(f"{card.title} has no space {space!r}; spaces: {', '.join(sorted(s for s in known if s))}")
    summary = mod.summarize(df) if hasattr(mod, "summarize") else []
    usable, problems = usability(df, card, space)
    requested = ", ".join(t for t in (f"subject {subject}" if subject is not None else "", space or "") if t) or f"{card.name} copy"
    verdict = f"{requested}: usable" if usable else f"{requested}: NOT usable (exit {EXIT_UNUSABLE}): " + "; ".join(problems)
    if as_json:
        records = json.loads(df.to_json(orient="records"))
        click.echo(json.dumps({"dataset": card.name, "root": str(card.root(root, must_exist=False)), "files": records, "summary": summary,
                               "usable": usable, "problems": problems}, indent=1))
    else:
        counts = df["status"].value_counts().to_dict()
        click.echo(f"{card.title} at {card.root(root, must_exist=False)}: "
                   + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("present", "missing", "unreadable")))
        import pandas as pd  # start-up: pandas

        with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
            click.echo(df.to_string(index=False))
        for line in summary:
            click.echo(line)
        click.echo(verdict)
    if not usable:
        ctx.exit(EXIT_UNUSABLE)


@datasets.command("fetch")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), required=True, help="Where to put the files (the dataset root).")
@click.option("--subject", type=int, required=True)
@click.option("--space", required=True, help="Space to fetch (see `brainlid datasets info NAME`).")
@click.option("--accept-terms", is_flag=True, help="Confirm you accepted the dataset's terms of use.")
@click.option("--base-url", default=None, help="Download from this URL instead of the official location.")
@click.option("--session", "sessions", type=int, multiple=True, help="Only these sessions (repeatable; default: all).")
@click.option("--with-optional", is_flag=True, help="Also fetch optional big files (NSD: the 37 GB image brick).")
@click.option("--verify", is_flag=True, help="Recompute checksums of files already present.")
def fetch_cmd(name, root, subject, space, accept_terms, base_url, sessions, with_optional, verify) -> None:
    """Download the files of dataset NAME that one subject and space need (resumable, verified)."""
    from ..data.fetch import fetch_dataset  # start-up: numpy/pandas (the data package)

    def progress(rel, done, total):
        if total:
            sys.stderr.write(f"\r{rel}: {done * 100 // max(total, 1)}%")
            if done >= total:
                sys.stderr.write("\n")

    res = fetch_dataset(name, root, subject, space, accept_terms=accept_terms, base_url=base_url,
                        sessions=list(sessions) or None, with_optional=with_optional, verify=verify, progress=progress)
    n_new = sum(r["status"] == "downloaded" for r in res)
    click.echo(f"{n_new} file(s) downloaded, {len(res) - n_new} already present, into {root}")
