"""``brainlid submit prepare|check|send`` and ``brainlid leaderboard serve|worker|build|token|baselines|private|rescore``.

``serve`` and ``token`` may create a new board database; every other command opens an existing
one only (``Database(..., create=False)``), so a mistyped ``--db`` is an error, not an empty board.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

_DB_HELP = "Database URL: sqlite:///PATH (default $BRAINLID_HOME/leaderboard/board.sqlite) or postgresql://..."


def _existing_db(db_url):
    """The board database at ``db_url``; an error if there is none (read-only and maintenance commands)."""
    from ..leaderboard.db import Database

    return Database(db_url, create=False)


def _check_listen(host: str, port: int) -> None:
    """One-line error for a port out of range or an address that cannot be listened on (before any URL is printed)."""
    import socket

    from ..errors import InputError

    if not 1 <= port <= 65535:
        raise InputError(f"--port must be from 1 to 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise InputError(f"--host {host!r} cannot be resolved ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _limits(max_upload_mb: float | None):
    from ..leaderboard.bundle import Limits

    if max_upload_mb is None:
        return Limits()
    return Limits(max_upload=int(max_upload_mb * (1 << 20)))


def _scoring_limits(f):
    """The fault and memory options of ``leaderboard serve`` (in-process workers) and ``leaderboard worker``."""
    for opt in reversed([
        click.option("--memory-budget", default=None, metavar="SIZE",
                     help="Memory a bundle's scoring may need, e.g. 8GiB (serve checks it at upload too; default: half "
                          "this machine's memory; 0: no check)."),
        click.option("--max-attempts", default=3, show_default=True, type=click.IntRange(min=1),
                     help="Failures the scoring raises before a submission is rejected."),
        click.option("--max-lease-expiries", default=5, show_default=True, type=click.IntRange(min=1),
                     help="Times a job's worker may die (or the server restart) mid-job before it is rejected."),
        click.option("--stop-grace", default=30.0, show_default=True, type=click.FloatRange(min=0),
                     help="On SIGTERM/Ctrl-C, seconds to let the job being scored finish before giving it back to "
                          "the queue."),
    ]):
        f = opt(f)
    return f


def _memory(text: str | None) -> int | None:
    """``--memory-budget``: None (the default), or bytes (``0`` disables the check)."""
    if text is None:
        return None
    from ..scoring.distributed import parse_memory

    return parse_memory(text)


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


def register(cli: click.Group) -> None:
    @cli.group("submit")
    def submit():
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
        from ..errors import InputError
        from ..leaderboard.scoring import prepare_bundle
        from ._common import split_ids

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
            from ..features.files import load_features

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
        from ..leaderboard.scoring import BenchmarkData, check_bundle

        report = check_bundle(bundle, data=BenchmarkData(data_root, fixture_fallback=not no_fixture),
                              limits=_limits(max_upload_mb))
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
        from ..leaderboard.client import poll, send_bundle

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

    @cli.group("leaderboard")
    def board():
        """Run a leaderboard: service, workers, static site, team tokens, baselines."""

    @board.command("serve")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=8000, show_default=True, type=int)
    @click.option("--data-root", type=click.Path(path_type=Path), default=None, help="The benchmarks' data root.")
    @click.option("--storage", type=click.Path(path_type=Path), default=None, help="Bundle storage folder.")
    @click.option("--workers", default=1, show_default=True, type=int,
                  help="In-process scoring threads (0: run `brainlid leaderboard worker` separately).")
    @click.option("--lease", default=60.0, show_default=True, type=float, help="Job lease in seconds.")
    @click.option("--max-upload-mb", type=float, default=None, help="Upload limit in MiB (default 2048).")
    @click.option("--private", multiple=True, metavar="ID", help="Benchmark whose test responses are private (repeat).")
    @click.option("--title", default="brainlid leaderboard", show_default=True)
    @click.option("--rate-limit", default=30, show_default=True, type=click.IntRange(min=0),
                  help="Uploads per team per minute (429 past it; 0: unlimited, for tests and trusted labs).")
    @click.option("--team-inflight", default=2, show_default=True, type=click.IntRange(min=0),
                  help="Uploads of one team in progress at once (429 past it; 0: unlimited).")
    @click.option("--max-pending-uploads", default=64, show_default=True, type=click.IntRange(min=1),
                  help="Uploads in progress at once, all teams (503 with Retry-After past it).")
    @click.option("--validation-slots", default=2, show_default=True, type=click.IntRange(min=1),
                  help="Uploads validated at once (a thread each, a few MiB of memory each).")
    @click.option("--body-timeout", default=60.0, show_default=True, type=click.FloatRange(min=1),
                  help="Seconds an upload may take beyond its size divided by --min-upload-kib (408 past it).")
    @click.option("--min-upload-kib", default=64.0, show_default=True, type=click.FloatRange(min=0.001),
                  help="KiB per second an upload must sustain on average.")
    @_scoring_limits
    def serve(db_url, host, port, data_root, storage, workers, lease, max_upload_mb, private, title, rate_limit,
              team_inflight, max_pending_uploads, validation_slots, body_timeout, min_upload_kib, memory_budget,
              max_attempts, max_lease_expiries, stop_grace):
        """Serve the board and its submission API (uvicorn)."""
        from ..errors import require
        from ..leaderboard.app import create_app
        from ..leaderboard.uploads import UploadPolicy

        uvicorn = require("uvicorn", "leaderboard", "the leaderboard service")
        _check_listen(host, port)
        policy = UploadPolicy(body_timeout=body_timeout, min_upload_rate=min_upload_kib * 1024,
                              max_pending=max_pending_uploads, rate_limit=rate_limit, team_inflight=team_inflight,
                              validation_slots=validation_slots)
        app = create_app(db_url, storage=storage, data_root=data_root, limits=_limits(max_upload_mb), workers=workers,
                         lease_seconds=lease, private=tuple(private), title=title, uploads=policy,
                         max_attempts=max_attempts, max_lease_expiries=max_lease_expiries,
                         memory_budget=_memory(memory_budget), stop_grace=stop_grace)
        click.echo(f"brainlid leaderboard on http://{host}:{port}/ (database {app.state.db._safe_url()})", err=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)

    @board.command("worker")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--data-root", type=click.Path(path_type=Path), default=None, help="The benchmarks' data root.")
    @click.option("--lease", default=60.0, show_default=True, type=float, help="Job lease in seconds.")
    @_scoring_limits
    @click.option("--exit-when-empty", is_flag=True, help="Stop when the queue is empty (batch mode).")
    def worker(db_url, data_root, lease, max_attempts, max_lease_expiries, memory_budget, stop_grace, exit_when_empty):
        """Score queued submissions (run several, anywhere that sees the database and bundle storage)."""
        import signal
        import threading

        from ..leaderboard.scoring import BenchmarkData
        from ..leaderboard.worker import Worker

        stop = threading.Event()
        w = Worker(_existing_db(db_url), BenchmarkData(data_root), lease_seconds=lease, max_attempts=max_attempts,
                   max_lease_expiries=max_lease_expiries, memory_budget=_memory(memory_budget))
        done: list[int] = []
        loop = threading.Thread(target=lambda: done.append(w.run(stop, exit_when_empty=exit_when_empty)), daemon=True)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *a: stop.set())
        click.echo(f"worker {w.owner} started", err=True)
        loop.start()
        while loop.is_alive() and not stop.wait(0.5):
            pass
        loop.join(stop_grace)
        if loop.is_alive() and w.release_current():
            click.echo(f"worker {w.owner} stopped mid-job; gave it back to the queue", err=True)
        click.echo(f"worker {w.owner} processed {done[0] if done else 0} submission(s)", err=True)

    @board.command("build")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the static site.")
    @click.option("--title", default="brainlid leaderboard", show_default=True)
    def build(db_url, out, title):
        """Render the board as a static site (index.html, entries/, leaderboard.csv/json)."""
        from ..leaderboard.site import build_site

        paths = build_site(_existing_db(db_url), out, title=title)
        click.echo(f"wrote {len(paths)} file(s) under {out}")

    @board.command("token")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--team", required=True, help="Team name (an existing team gets a new token).")
    def token(db_url, team):
        """Create a team token (printed once; only its hash is stored)."""
        from ..leaderboard.db import Database
        from ..leaderboard.queue import create_team

        click.echo(create_team(Database(db_url), team))

    @board.command("baselines")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--benchmark", "benchmarks", multiple=True, required=True, metavar="ID")
    @click.option("--model", default=None, metavar="SPEC", help="Architecture for the random-weights and shuffled baselines.")
    @click.option("--which", default="pixels,random,shuffled", show_default=True)
    @click.option("--layers", default=None, help="Comma-separated layers for --model.")
    @click.option("--data-root", type=click.Path(path_type=Path), default=None)
    def baselines(db_url, benchmarks, model, which, layers, data_root):
        """Score the baselines on the server's data and add them as reference rows."""
        from ..leaderboard.worker import add_baselines

        ids = add_baselines(_existing_db(db_url), model, list(benchmarks), root=data_root,
                            which=[w for w in which.split(",") if w.strip()],
                            layers=[s for s in layers.split(",") if s.strip()] if layers else None)
        click.echo(f"added {len(ids)} baseline entr{'y' if len(ids) == 1 else 'ies'}")

    @board.command("private")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.argument("benchmark")
    @click.option("--public", is_flag=True, help="Mark the benchmark's test responses public again.")
    def private_cmd(db_url, benchmark, public):
        """Label a benchmark private-test (its test responses are held only by this server)."""
        from ..leaderboard.queue import set_benchmark_privacy

        set_benchmark_privacy(_existing_db(db_url), benchmark, not public)  # refuses an unknown benchmark
        click.echo(f"{benchmark}: {'public' if public else 'private'}-test")

    @board.command("rescore")
    @click.option("--db", "db_url", default=None, help=_DB_HELP)
    @click.option("--benchmark", "benchmarks", multiple=True, metavar="ID",
                  help="Only entries scored on this benchmark (repeat for several).")
    @click.option("--all", "everything", is_flag=True,
                  help="Re-queue every kept bundle, not only those scored under an older benchmark version.")
    def rescore(db_url, benchmarks, everything):
        """Re-queue kept bundles under the current benchmark versions (the old scores stay, labelled with their version)."""
        from ..leaderboard.queue import requeue_for_rescore

        new = requeue_for_rescore(_existing_db(db_url), benchmarks=list(benchmarks) or None, everything=everything)
        click.echo(f"re-queued {len(new)} submission(s)" + (": " + ", ".join(f"{old} → {sid}" for old, sid in new) if new else
                                                            " (every kept bundle is scored under the current versions)"))
