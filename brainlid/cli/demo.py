"""``brainlid demo``: the whole pipeline offline — digits, a 12-model zoo, SYNTHETIC NSD-format brains.

See :mod:`brainlid.demo` for what runs. ``--geometry-only`` prints just the geometry table of
built-in examples (:func:`brainlid.geometry.demo.demo_table`: digits, a 5-d cube in 64-d, a swiss
roll), which takes seconds; the full demo also prints that table.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ._common import check_output_dir


def _geometry_table(console, table, elapsed=None):
    from rich.table import Table  # start-up: rich only when the table is printed

    t = Table(title="geometry on built-in examples: local vs global intrinsic dimension", title_justify="left")
    t.add_column("measure")
    for name in table["dataset"]:
        t.add_column(str(name), justify="right")
    for col in table.columns[1:]:
        t.add_row(col, *[f"{v:.2f}" if isinstance(v, float) else str(v) for v in table[col]])
    console.print(t)
    console.print(
        "Local LID (exact kNN, mean over points) recovers the manifold dimension where it is known "
        "(true_dim); on the curled swiss roll the global PCA dimension counts the ambient span instead."
        + (f" {elapsed:.1f} s." if elapsed is not None else "")
    )


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output folder (default $BRAINLID_HOME/demo/output).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the data split, zoo training and synthetic subjects.")
@click.option("--geometry-only", is_flag=True, help="Only the geometry table of built-in examples (seconds).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def demo(out, seed: int, geometry_only: bool, as_json: bool) -> None:
    """Run the whole pipeline offline: digits → model zoo → SYNTHETIC NSD-format subjects → scores → LID analysis → report."""
    from rich.console import Console  # start-up: rich

    from ..geometry.demo import demo_table  # start-up: numpy/pandas

    check_output_dir(out, "--out")  # before minutes of work
    console = Console(width=150, stderr=as_json)
    t0 = time.perf_counter()
    geo = demo_table(seed=seed)
    if geometry_only:
        if as_json:
            click.echo(json.dumps(geo.to_dict(orient="records")))
        else:
            _geometry_table(console, geo, time.perf_counter() - t0)
        return
    from ..demo import SUMMARY_COLUMNS, run_demo  # heavy: the whole pipeline (torch, scikit-learn)

    res = run_demo(out, seed=seed, log=lambda msg: console.print(msg, highlight=False))
    if as_json:
        click.echo(json.dumps({
            "summary": json.loads(res.summary.to_json(orient="records")),
            "headline": json.loads(res.analysis.headline().to_json(orient="records")),
            "geometry_examples": geo.to_dict(orient="records"),
            "report": str(res.report), "out": str(res.out), "seconds": res.timings, "synthetic_brain_data": True,
        }))
        return
    from rich.table import Table  # start-up: rich

    _geometry_table(console, geo)
    t = Table(title="brainlid demo — zoo models on SYNTHETIC NSD-format subjects (not real brain data)", title_justify="left")
    for c in SUMMARY_COLUMNS:
        t.add_column(c, justify="left" if c == "model" else "right")
    for rec in res.summary.itertuples(index=False):
        t.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in rec])
    console.print(t)
    head = res.analysis.headline()
    h = Table(title=f"across {int(head['n_models'].max())} models: LID (MLE, K=20, fixed in advance) vs ...", title_justify="left")
    for c in ("target", "pearson r [95% CI]", "p", "spearman rho", "p ", "partial r | log params"):
        h.add_column(c, justify="left" if c == "target" else "right")
    for r in head.itertuples(index=False):
        h.add_row(str(r.target), f"{r.pearson_r:+.2f} [{r.pearson_ci_low:+.2f}, {r.pearson_ci_high:+.2f}]", f"{r.pearson_p:.2g}",
                  f"{r.spearman_r:+.2f}", f"{r.spearman_p:.2g}", f"{r.partial_pearson_r:+.2f}")
    console.print(h)
    console.print("These relations are what this run found on synthetic data; they are not evidence about brains.")
    console.print(f"tables: {res.out}   report: {res.report}   ({res.timings['total']:.0f} s)", highlight=False)
