"""``brainlid submit prepare|check|send``: leaderboard submissions (features, never code or scores)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import InputError
from ._common import split_ids


def upload_limits(max_upload_mb: float | None):
    """The bundle limits of ``--max-upload-mb`` (MiB; None: :class:`brainlid.leaderboard.Limits`' defaults)."""
    from ..leaderboard import Limits  # start-up: numpy/pandas

    if max_upload_mb is None:
        return Limits()
    return Limits(max_upload=int(max_upload_mb * (1 << 20)))


def _print_report(report, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"status": report.status, "reason": report.reason, "fixture": report.fixture,
                               "scores": report.summary()}, indent=1, default=str))
        return
    if report.fixture:
        click.echo(f"NOTE: the dataset of {', '.join(report.fixture)} is not on this machine; checked against FIXTURE "
                   "data (synthetic, not the real benchmark): format and scoring path only.")
    if report.status == "rejected":
        click.echo(f"rejected: {report.reason}")
        return
    click.echo(f"{report.status}: {report.bundle.model_name} — {len(report.bundle.features)} layer(s), "
               f"{report.bundle.stimulus_ids.size} stimuli, benchmarks {', '.join(report.bundle.benchmarks)}")
    for r in report.summary():
        val = "–" if r["value"] is None else f"{r['value']:.4f}"
        norm = "" if r["normalised"] is None else f"  normalised {r['normalised']:.4f}"
        ci = "" if r["ci_low"] is None else f"  [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        click.echo(f"  {r['benchmark']}  {r['metric']}  layer {r['layer']}: {val}{ci}{norm}")


@click.group("submit")
def submit() -> None:
    """Prepare, check and send leaderboard submissions (features, never code or scores)."""


@submit.command("prepare")
@click.option("--model", default=None, metavar="SPEC", help="Model spec, e.g. torchvision:resnet18 or module:net.py:Net@w.pt.")
@click.option("--features", type=click.Path(path_type=Path), default=None, metavar="DIR|FILE",
              help="Instead of --model: precomputed features from any framework (a `brainlid extract --out` folder, "
                   "or .npz/.h5/.safetensors with a 'stimulus_ids' array); needs --name.")
@click.option("--benchmark", "benchmarks", multiple=True, required=True, metavar="ID",
              help="Benchmark id (repeat for several sharing one stimulus set, e.g. ROIs of one NSD subject).")
@click.option("--layers", default=None, help="Comma-separated layers (default: the model's top-level modules).")
@click.option("--name", default=None, help="Model name shown on the board (default: the spec).")
@click.option("--parameters", type=int, default=None, help="Number of model parameters.")
@click.option("--training-data", default="", help="What the model was trained on.")
@click.option("--url", default="", help="Paper or code URL (http/https).")
@click.option("--description", default="", help="Free text shown on the entry page.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset root (default $BRAINLID_DATA).")
@click.option("--fixture", is_flag=True, help="Use fixture data when the dataset is absent (to try the pipeline).")
@click.option("--pooling", default="avg", show_default=True)
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--format", "fmt", type=click.Choice(["npy", "safetensors"]), default="npy", show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="The bundle (.zip) to write.")
def prepare(model, features, benchmarks, layers, name, parameters, training_data, url, description, data_root, fixture,
            pooling, batch_size, fmt, out):
    """Extract (cached) features of the benchmark's stimulus set and write a submission bundle.

    With --features, a model from any framework: its precomputed features of the stimulus set
    (`brainlid benchmarks stimuli ID --out DIR` exports it) are checked and bundled instead.
    """
    from ..features import load_features  # heavy: torch when a model is built; numpy/pandas
    from ..leaderboard import prepare_bundle  # start-up: numpy/pandas

    if (model is None) == (features is None):
        raise InputError("give either --model or --features, not both" if model else "give --model SPEC or --features DIR|FILE")
    if features is not None and not name:
        raise InputError("--features needs --name NAME (the model name shown on the board)")
    ids = split_ids(benchmarks)
    md = {"model_name": name or model, "training_data": training_data, "url": url, "description": description}
    if parameters is not None:
        md["parameters"] = parameters
    md = {k: v for k, v in md.items() if v not in ("", None)}
    sel = [s for s in layers.split(",") if s.strip()] if layers else None
    if features is not None:
        model = load_features(features, sel)
    path = prepare_bundle(model, ids, out, layers=sel, metadata=md, root=data_root, fixture=fixture, pooling=pooling,
                          batch_size=batch_size, fmt=fmt, note=lambda m: click.echo(f"note: {m}", err=True))
    click.echo(f"wrote {path} ({path.stat().st_size} bytes); check it with: brainlid submit check {path}")


@submit.command("check")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="Dataset root (default $BRAINLID_DATA).")
@click.option("--no-fixture", is_flag=True, help="Fail instead of using fixture data when the dataset is absent.")
@click.option("--max-upload-mb", type=float, default=None, help="The service's upload limit (default 2048).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def check(bundle, data_root, no_fixture, max_upload_mb, as_json):
    """Run the service's validation and scoring locally and say what it would answer (exit 1 if rejected)."""
    from ..leaderboard import BenchmarkData, check_bundle  # start-up: numpy/pandas

    report = check_bundle(bundle, data=BenchmarkData(data_root, fixture_fallback=not no_fixture),
                          limits=upload_limits(max_upload_mb))
    _print_report(report, as_json)
    if report.status == "rejected":
        raise click.exceptions.Exit(1)


@submit.command("send")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--server", required=True, help="Board URL, e.g. https://board.example.org")
@click.option("--token", required=True, envvar="BRAINLID_TOKEN", help="Your team token (or $BRAINLID_TOKEN).")
@click.option("--wait", is_flag=True, help="Poll until the submission is scored or rejected.")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="Seconds to wait with --wait.")
def send(bundle, server, token, wait, timeout):
    """Upload a bundle to a board; prints the submission id and status."""
    from ..leaderboard.client import poll, send_bundle  # start-up: the leaderboard package (numpy/pandas)

    res = send_bundle(bundle, server, token)
    click.echo(f"submission {res.get('id', '?')}: {res['status']}" + (f" — {res['reason']}" if res.get("reason") else ""))
    if res["status"] == "rejected":
        raise click.exceptions.Exit(1)
    if wait:
        res = poll(server, res["id"], timeout=timeout)
        click.echo(f"submission {res['id']}: {res['status']}" + (f" — {res['reason']}" if res.get("reason") else ""))
        for r in res.get("scores", []):
            click.echo(f"  {r['benchmark']}  {r['metric']}  layer {r['layer']}: {r['value']:.4f}")
        if res["status"] == "rejected":
            raise click.exceptions.Exit(1)
