"""``brainlid leaderboard serve|worker|build|token|baselines|private|rescore``: run a board.

``serve`` and ``token`` may create a new board database; every other command opens an existing
one only (``Database(..., create=False)``), so a mistyped ``--db`` is an error, not an empty board.
"""

from __future__ import annotations

import signal
import socket
import threading
from pathlib import Path

import click

from ..errors import InputError, require
from ._common import LazyDefaultOption
from .submit import upload_limits

_DB_HELP = "Database URL: sqlite:///PATH (default $BRAINLID_HOME/leaderboard/board.sqlite) or postgresql://..."


def _existing_db(db_url):
    """The board database at ``db_url``; an error if there is none (read-only and maintenance commands)."""
    from ..leaderboard import Database  # start-up: numpy/pandas

    return Database(db_url, create=False)


def _check_listen(host: str, port: int) -> None:
    """One-line error for a port out of range or an address that cannot be listened on (before any URL is printed)."""
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
    from ..scoring.distributed import parse_memory  # start-up: numpy/pandas and the scoring code

    return parse_memory(text)


def _policy_default(attr: str, per: int = 1):
    """Reads the default of :class:`brainlid.leaderboard.uploads.UploadPolicy` ``attr`` (divided by ``per``) when needed.

    ``serve``'s upload options default to the library's policy (one source). Its ``--rate-limit``
    and ``--team-inflight`` do not: a public board limits what the library leaves unlimited.
    """
    def read():
        from ..leaderboard.uploads import UploadPolicy  # start-up: the leaderboard package loads numpy/pandas

        value = getattr(UploadPolicy(), attr)
        return value / per if per != 1 else value

    return read


@click.group("leaderboard")
def leaderboard() -> None:
    """Run a leaderboard: service, workers, static site, team tokens, baselines."""


@leaderboard.command("serve")
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
@click.option("--max-pending-uploads", cls=LazyDefaultOption, default_from=_policy_default("max_pending"),
              show_default=True, type=click.IntRange(min=1),
              help="Uploads in progress at once, all teams (503 with Retry-After past it).")
@click.option("--validation-slots", cls=LazyDefaultOption, default_from=_policy_default("validation_slots"),
              show_default=True, type=click.IntRange(min=1),
              help="Uploads validated at once (a thread each, a few MiB of memory each).")
@click.option("--body-timeout", cls=LazyDefaultOption, default_from=_policy_default("body_timeout"),
              show_default=True, type=click.FloatRange(min=1),
              help="Seconds an upload may take beyond its size divided by --min-upload-kib (408 past it).")
@click.option("--min-upload-kib", cls=LazyDefaultOption, default_from=_policy_default("min_upload_rate", 1024),
              show_default=True, type=click.FloatRange(min=0.001),
              help="KiB per second an upload must sustain on average.")
@_scoring_limits
def serve(db_url, host, port, data_root, storage, workers, lease, max_upload_mb, private, title, rate_limit,
          team_inflight, max_pending_uploads, validation_slots, body_timeout, min_upload_kib, memory_budget,
          max_attempts, max_lease_expiries, stop_grace):
    """Serve the board and its submission API (uvicorn)."""
    from ..leaderboard.app import create_app  # optional: starlette (the leaderboard extra)
    from ..leaderboard.uploads import UploadPolicy  # start-up: numpy/pandas

    uvicorn = require("uvicorn", "leaderboard", "the leaderboard service")
    _check_listen(host, port)
    policy = UploadPolicy(body_timeout=body_timeout, min_upload_rate=min_upload_kib * 1024,
                          max_pending=max_pending_uploads, rate_limit=rate_limit, team_inflight=team_inflight,
                          validation_slots=validation_slots)
    app = create_app(db_url, storage=storage, data_root=data_root, limits=upload_limits(max_upload_mb), workers=workers,
                     lease_seconds=lease, private=tuple(private), title=title, uploads=policy,
                     max_attempts=max_attempts, max_lease_expiries=max_lease_expiries,
                     memory_budget=_memory(memory_budget), stop_grace=stop_grace)
    click.echo(f"brainlid leaderboard on http://{host}:{port}/ (database {app.state.db.safe_url})", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)


@leaderboard.command("worker")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--data-root", type=click.Path(path_type=Path), default=None, help="The benchmarks' data root.")
@click.option("--lease", default=60.0, show_default=True, type=float, help="Job lease in seconds.")
@_scoring_limits
@click.option("--exit-when-empty", is_flag=True, help="Stop when the queue is empty (batch mode).")
def worker(db_url, data_root, lease, max_attempts, max_lease_expiries, memory_budget, stop_grace, exit_when_empty):
    """Score queued submissions (run several, anywhere that sees the database and bundle storage)."""
    from ..leaderboard import BenchmarkData  # start-up: numpy/pandas
    from ..leaderboard.worker import Worker, stop_workers  # start-up: numpy/pandas, the scoring code

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
    if stop_workers([(w, loop)], stop, stop_grace):
        click.echo(f"worker {w.owner} stopped mid-job; gave it back to the queue", err=True)
    click.echo(f"worker {w.owner} processed {done[0] if done else 0} submission(s)", err=True)


@leaderboard.command("build")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder for the static site.")
@click.option("--title", default="brainlid leaderboard", show_default=True)
def build(db_url, out, title):
    """Render the board as a static site (index.html, entries/, leaderboard.csv/json)."""
    from ..leaderboard.site import build_site  # start-up: the leaderboard package (numpy/pandas)

    paths = build_site(_existing_db(db_url), out, title=title)
    click.echo(f"wrote {len(paths)} file(s) under {out}")


@leaderboard.command("token")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--team", required=True, help="Team name (an existing team gets a new token).")
def token(db_url, team):
    """Create a team token (printed once; only its hash is stored)."""
    from ..leaderboard import Database  # start-up: numpy/pandas
    from ..leaderboard.queue import create_team  # start-up: numpy/pandas

    click.echo(create_team(Database(db_url), team))


@leaderboard.command("baselines")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--benchmark", "benchmarks", multiple=True, required=True, metavar="ID")
@click.option("--model", default=None, metavar="SPEC", help="Architecture for the random-weights and shuffled baselines.")
@click.option("--which", default="pixels,random,shuffled", show_default=True)
@click.option("--layers", default=None, help="Comma-separated layers for --model.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None)
def baselines(db_url, benchmarks, model, which, layers, data_root):
    """Score the baselines on the server's data and add them as reference rows."""
    from ..leaderboard.worker import add_baselines  # heavy: torch for the random-weights baseline

    ids = add_baselines(_existing_db(db_url), model, list(benchmarks), root=data_root,
                        which=[w for w in which.split(",") if w.strip()],
                        layers=[s for s in layers.split(",") if s.strip()] if layers else None)
    click.echo(f"added {len(ids)} baseline entr{'y' if len(ids) == 1 else 'ies'}")


@leaderboard.command("private")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.argument("benchmark")
@click.option("--public", is_flag=True, help="Mark the benchmark's test responses public again.")
def private_cmd(db_url, benchmark, public):
    """Label a benchmark private-test (its test responses are held only by this server)."""
    from ..leaderboard.queue import set_benchmark_privacy  # start-up: numpy/pandas

    set_benchmark_privacy(_existing_db(db_url), benchmark, not public)  # refuses an unknown benchmark
    click.echo(f"{benchmark}: {'public' if public else 'private'}-test")


@leaderboard.command("rescore")
@click.option("--db", "db_url", default=None, help=_DB_HELP)
@click.option("--benchmark", "benchmarks", multiple=True, metavar="ID",
              help="Only entries scored on this benchmark (repeat for several).")
@click.option("--all", "everything", is_flag=True,
              help="Re-queue every kept bundle, not only those scored under an older benchmark version.")
def rescore(db_url, benchmarks, everything):
    """Re-queue kept bundles under the current benchmark versions (the old scores stay, labelled with their version)."""
    from ..leaderboard.queue import requeue_for_rescore  # start-up: numpy/pandas

    new = requeue_for_rescore(_existing_db(db_url), benchmarks=list(benchmarks) or None, everything=everything)
    click.echo(f"re-queued {len(new)} submission(s)" + (": " + ", ".join(f"{old} → {sid}" for old, sid in new) if new else
                                                        " (every kept bundle is scored under the current versions)"))
