"""The ``brainlid`` command line (click).

Every command is a module-level ``click`` command or group in a public module of this package,
one module per command group, importable and runnable on its own
(``from brainlid.cli.score import score``; ``CliRunner().invoke(score, [...])``):

* :mod:`.geometry` — ``lid``; :mod:`.align` — ``align``;
* :mod:`.datasets` — ``datasets list|info|check|fetch``;
* :mod:`.features` — ``extract``, ``layers``, ``cache list|clear``;
* :mod:`.score` — ``score``; :mod:`.benchmarks` — ``benchmarks list|stimuli``;
  :mod:`.analyze` — ``analyze``; :mod:`.compare` — ``compare``;
* :mod:`.submit` — ``submit prepare|check|send``; :mod:`.leaderboard` — ``leaderboard serve|worker|build|...``;
* :mod:`.demo` — ``demo``.

:data:`cli` is the root group that adds them all; :func:`main` runs it. Errors that brainlid
raises on bad input (:class:`brainlid.errors.BrainlidError`), unreadable files and bad values are
printed as one line ``brainlid: error: ...`` with exit code 1; ``--debug`` shows the traceback
instead.

Start-up: the command modules import only click, the standard library and brainlid's light ground
modules (errors, config) at load time; every command imports what it needs (numpy kernels,
pandas, torch, scikit-learn, …) inside its body, with a comment saying why. Defaults and choices
kept by the library (estimator names, the upload policy) are read when help is shown or the
command runs (:class:`._common.LazyChoice`, :class:`._common.LazyDefaultOption`). Importing torch
alone takes ~3 s, so ``brainlid --help``, ``brainlid lid`` and ``brainlid align`` never load it
(tests/test_cli_startup.py checks the import graph; benchmarks/bench_startup.py measures the wall
time).
"""

from __future__ import annotations

import sys

import click

from .._version import __version__
from ..errors import BrainlidError
from . import align, analyze, benchmarks, compare, datasets, demo, features, geometry, leaderboard, score, submit

__all__ = ["cli", "main", "COMMANDS"]

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


#: Every command and group of the root, in the order of the data flow (``--help`` lists them sorted); the
#: package's attributes ``brainlid.cli.score`` etc. stay the modules, each holding its command of that name
COMMANDS = [datasets.datasets, features.extract, features.layers, features.cache, geometry.lid, align.align,
            benchmarks.benchmarks, score.score, analyze.analyze, compare.compare, submit.submit,
            leaderboard.leaderboard, demo.demo]
for _command in COMMANDS:
    cli.add_command(_command)


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
