"""``brainlid benchmarks list|stimuli``: the registered benchmark definitions and their stimulus sets."""

from __future__ import annotations

from pathlib import Path

import click

from ._common import echo_table


@click.group("benchmarks")
def benchmarks() -> None:
    """Benchmark definitions (ids: dataset.subject.roi.metric)."""


@benchmarks.command("list")
@click.option("--dataset", default=None, help="Only this dataset's benchmarks (e.g. nsd).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON records.")
def benchmarks_list(dataset, as_json):
    """List the registered benchmarks and their versioned definitions."""
    from ..scoring import list_benchmarks  # start-up: numpy/pandas

    df = list_benchmarks(dataset)
    if as_json:
        click.echo(df.to_json(orient="records", indent=1))
    else:
        echo_table(df[["id", "kind", "space", "split", "ceiling", "version", "lid_stimulus_set"]], max_rows=10_000)


@benchmarks.command("stimuli")
@click.argument("bench_id", metavar="ID")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset root (default from $BRAINLID_DATA).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write (new or empty).")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in a non-empty --out.")
def benchmarks_stimuli(bench_id, data_root, out, overwrite):
    """Export a benchmark's stimulus set so features can be computed in any framework.

    Writes OUT/stimulus_ids.npy (np.load(..., allow_pickle=False): int64 or unicode ids) and one
    lossless PNG per stimulus at its native resolution, named by position (00000.png, 00001.png, …)
    in the ids' order — exactly the stimuli `brainlid score --features` and `brainlid submit
    prepare --features` need. stimulus_ids.npy is written last.
    """
    from ..data.stimulus_folder import check_export_target, write_stimulus_folder  # start-up: numpy/pandas, PIL
    from ..leaderboard.scoring import benchmark_stimulus_set  # start-up: numpy/pandas
    from ..scoring import get_benchmark  # start-up: numpy/pandas

    get_benchmark(bench_id)  # unknown id → one-line error listing close ones
    check_export_target(out, overwrite)  # before the data are read
    stimuli = benchmark_stimulus_set(bench_id, data_root)
    write_stimulus_folder(stimuli, out, overwrite=overwrite)
    kind = "string" if stimuli.ids.dtype.kind == "U" else "int64"
    click.echo(f"wrote {len(stimuli)} images and stimulus_ids.npy ({kind} ids) to {out}")
