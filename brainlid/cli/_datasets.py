"""``brainlid datasets``: list, describe, check and fetch local dataset copies (driven by the dataset cards).

* ``brainlid datasets list`` — every card.
* ``brainlid datasets info NAME`` — citation, terms, how to obtain, expected files.
* ``brainlid datasets check NAME [--root PATH] [--subject N] [--json]`` — the loader module's
  ``check()`` table (present / missing / unreadable per subject and space) and its ``summarize()``
  lines; exit code 0 even when files are missing (the table says so).
* ``brainlid datasets fetch NAME --root PATH --subject N --space S --accept-terms [--base-url URL]``.
"""

from __future__ import annotations

import json
import sys

import click


def register(cli: click.Group) -> None:
    cli.add_command(datasets)


@click.group()
def datasets() -> None:
    """Dataset cards, local copies and downloads."""


@datasets.command("list")
def list_cmd() -> None:
    """List the supported datasets."""
    from ..data.cards import list_cards

    rows = [(c.name, c.title, c.folder, c.loader) for c in list_cards()]
    width = [max(len(r[i]) for r in rows + [("name", "title", "folder", "loader")]) for i in range(4)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(("name", "title", "folder", "loader"), width)))
    for r in rows:
        click.echo("  ".join(v.ljust(w) for v, w in zip(r, width)))


@datasets.command("info")
@click.argument("name")
def info_cmd(name: str) -> None:
    """Citation, terms of use, how to obtain and the expected files of dataset NAME."""
    from ..data.cards import get_card

    click.echo(get_card(name).info_text())


@datasets.command("check")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Dataset root (default: $BRAINLID_DATA/<folder>).")
@click.option("--subject", type=int, default=None, help="Check one subject only.")
@click.option("--json", "as_json", is_flag=True, help="Print the table and summary as JSON.")
def check_cmd(name: str, root: str | None, subject: int | None, as_json: bool) -> None:
    """What a local copy of dataset NAME holds: present, missing or unreadable files per subject and space."""
    from ..data.cards import get_card

    card = get_card(name)
    mod = card.module()
    df = mod.check(root=root, subject=subject)
    summary = mod.summarize(df) if hasattr(mod, "summarize") else []
    if as_json:
        records = json.loads(df.to_json(orient="records"))
        click.echo(json.dumps({"dataset": card.name, "root": str(card.root(root, must_exist=False)), "files": records, "summary": summary}, indent=1))
        return
    counts = df["status"].value_counts().to_dict()
    click.echo(f"{card.title} at {card.root(root, must_exist=False)}: "
               + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("present", "missing", "unreadable")))
    import pandas as pd

    with pd.option_context("display.max_rows", None, "display.max_colwidth", 80, "display.width", 200):
        click.echo(df.to_string(index=False))
    for line in summary:
        click.echo(line)


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
    from ..data.fetch import fetch_dataset

    def progress(rel, done, total):
        if total:
            sys.stderr.write(f"\r{rel}: {done * 100 // max(total, 1)}%")
            if done >= total:
                sys.stderr.write("\n")

    res = fetch_dataset(name, root, subject, space, accept_terms=accept_terms, base_url=base_url,
                        sessions=list(sessions) or None, with_optional=with_optional, verify=verify, progress=progress)
    n_new = sum(r["status"] == "downloaded" for r in res)
    click.echo(f"{n_new} file(s) downloaded, {len(res) - n_new} already present, into {root}")
