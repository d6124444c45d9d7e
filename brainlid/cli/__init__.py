"""The ``brainlid`` command line (click).

Each command group lives in its own module (``brainlid/cli/_<name>.py``) that
defines ``register(cli)``, adding its commands to the root group;
:data:`COMMAND_MODULES` lists them. Errors that brainlid raises on bad input
(:class:`brainlid.errors.BrainlidError`), unreadable files and bad values are
printed as one line ``brainlid: error: ...`` with exit code 1; ``--debug`` shows
the traceback instead.

Start-up: the command modules import only click and the standard library at load time;
every command imports what it needs (numpy kernels, pandas, torch, scikit-learn, …) inside
its body. Importing torch alone takes ~3 s, so ``brainlid --help``, ``brainlid lid`` and
``brainlid align`` never load it (tests/test_cli_startup.py checks the import graph;
benchmarks/bench_startup.py measures the wall time).
"""

from __future__ import annotations

import importlib
import sys

import click

from .._version import __version__
from ..errors import BrainlidError

COMMAND_MODULES = ["_leaderboard"]

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "--version", prog_name="brainlid", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """brainlid: score models against brain data and explain the scores by local intrinsic dimension.

    Run `brainlid COMMAND --help` for the options of each command.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(cli)

from .align import align  # noqa: E402
from .analyze import analyze  # noqa: E402
from .benchmarks import benchmarks  # noqa: E402
from .compare import compare  # noqa: E402
from .datasets import datasets  # noqa: E402
from .demo import demo  # noqa: E402
from .features import cache, extract, layers  # noqa: E402
from .geometry import lid  # noqa: E402
from .score import score  # noqa: E402

cli.add_command(align)
cli.add_command(datasets)
cli.add_command(demo)
cli.add_command(extract)
cli.add_command(layers)
cli.add_command(cache)
cli.add_command(lid)
cli.add_command(score)
cli.add_command(benchmarks)
cli.add_command(analyze)
cli.add_command(compare)


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        rv = cli.main(args=argv, prog_name="brainlid", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, EOFError) and not debug:  # click turns every EOFError into Abort
            click.echo(f"brainlid: error: unexpected end of input ({str(exc.__cause__) or 'EOFError'})", err=True)
            return 1
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (BrainlidError, OSError, ValueError) as exc:
        if debug:
            raise
        text = str(exc).strip()
        msg = text.splitlines()[0] if text else type(exc).__name__
        click.echo(f"brainlid: error: {msg}", err=True)
        return 1


def _console_main() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())
