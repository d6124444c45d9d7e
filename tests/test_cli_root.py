"""The command line's root: --help, --version, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import brainlid
from brainlid.cli import cli, main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"brainlid {brainlid._version.__version__}"


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.commands:
        assert name in out


def test_every_command_has_help():
    """`--help` works on every command and sub-command, and says something."""

    def walk(group, path):
        for name, cmd in group.commands.items():
            yield path + [name], cmd
            if hasattr(cmd, "commands"):
                yield from walk(cmd, path + [name])

    for path, cmd in walk(cli, []):
        res = subprocess.run([sys.executable, "-m", "brainlid", *path, "--help"], capture_output=True, text=True)
        assert res.returncode == 0, (path, res.stderr)
        assert "Usage:" in res.stdout and len(res.stdout.splitlines()) > 3, path


def test_unknown_command_exits_nonzero():
    res = subprocess.run([sys.executable, "-m", "brainlid", "no-such-command"], capture_output=True, text=True)
    assert res.returncode != 0
    assert "No such command" in res.stderr
