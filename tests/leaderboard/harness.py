"""Helpers for tests of the leaderboard: free ports, live service/worker subprocesses, a throw-away PostgreSQL.

Test code, not part of the package: the tests in this folder import it as ``harness`` (pytest's
default ``prepend`` import mode puts this folder on ``sys.path``); ``benchmarks/bench_leaderboard.py``
as ``tests.leaderboard.harness`` (run from the repository root).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

__all__ = ["free_port", "ServiceProcess", "start_worker", "PostgresServer", "find_pg_bin", "wait_until", "uploads_and_pages",
           "raw_upload"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll ``pred()`` until truthy (returned) or raise TimeoutError after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _env(home: str | os.PathLike | None) -> dict:
    env = dict(os.environ)
    if home is not None:
        env["BRAINLID_HOME"] = str(home)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ServiceProcess:
    """``brainlid leaderboard serve`` in a subprocess on 127.0.0.1:<free port>."""

    def __init__(self, db_url: str, *, data_root=None, workers: int = 0, home=None, extra: list[str] | None = None,
                 log: str | os.PathLike | None = None):
        self.db_url, self.data_root, self.workers, self.home = db_url, data_root, workers, home
        self.extra = list(extra or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        if log is None and home is not None:
            Path(home).mkdir(parents=True, exist_ok=True)
            log = Path(home) / f"serve-{self.port}.log"
        self.log = Path(log) if log else Path(tempfile.mkstemp(prefix="brainlid-serve-", suffix=".log")[1])
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ServiceProcess":
        cmd = [sys.executable, "-m", "brainlid", "leaderboard", "serve", "--db", self.db_url, "--port", str(self.port),
               "--workers", str(self.workers), *self.extra]
        if self.data_root is not None:
            cmd += ["--data-root", str(self.data_root)]
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self._fh, stderr=subprocess.STDOUT, env=_env(self.home))

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=2) as r:
                    return json.loads(r.read())["ok"]
            except OSError:
                return False

        wait_until(up, timeout, 0.1, "the service to answer")
        return self

    def kill(self) -> None:
        """SIGKILL (no graceful shutdown)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        self._close()

    def _close(self):
        fh = getattr(self, "_fh", None)
        if fh is not None:
            fh.close()
            self._fh = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


def start_worker(db_url: str, *, data_root=None, lease: float = 60.0, home=None, log=None,
                 extra: list[str] | None = None) -> subprocess.Popen:
    """``brainlid leaderboard worker`` in a subprocess (the caller stops it)."""
    cmd = [sys.executable, "-m", "brainlid", "leaderboard", "worker", "--db", db_url, "--lease", str(lease), *(extra or [])]
    if data_root is not None:
        cmd += ["--data-root", str(data_root)]
    out = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(home))


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (Debian: ``/usr/lib/postgresql/<v>/bin``), or None."""
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(cand, "initdb")) and os.path.exists(os.path.join(cand, "pg_ctl")):
            return Path(cand)
    for name in ("initdb",):
        p = shutil.which(name)
        if p and shutil.which("pg_ctl"):
            return Path(p).parent
    return None


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary folder, listening on 127.0.0.1:<free port>.

    As root, the cluster runs as the ``postgres`` system user (PostgreSQL refuses to run as
    root), through ``runuser``. Trust authentication on 127.0.0.1 only; removed on :meth:`stop`.
    """

    def __init__(self, bin_dir: Path | None = None):
        self.bin = bin_dir or find_pg_bin()
        if self.bin is None:
            raise FileNotFoundError("initdb/pg_ctl not found (install Debian's postgresql package)")
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="brainlid-pg-"))
        self.data = self.dir / "data"
        self._prefix: list[str] = []
        if os.geteuid() == 0:
            import pwd

            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise FileNotFoundError("running as root and there is no 'postgres' user to run the server as") from exc
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            runuser = shutil.which("runuser")
            self._prefix = [runuser, "-u", "postgres", "--"] if runuser else ["su", "postgres", "-s", "/bin/sh", "-c"]

    def _run(self, args: list[str], timeout: float = 120.0):
        if self._prefix and self._prefix[0] == "su":
            import shlex

            cmd = self._prefix + [" ".join(shlex.quote(a) for a in args)]
        else:
            cmd = self._prefix + args
        return subprocess.run(cmd, check=True, capture_output=True, timeout=timeout, cwd=self.dir)

    def start(self) -> "PostgresServer":
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                   "--no-sync"])
        opts = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=200"
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start"])
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as con:
            con.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        except Exception:  # noqa: BLE001 - best effort on teardown
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- load generation (tests, benchmarks)
async def raw_upload(host: str, port: int, token: str, body: bytes, pieces: int, pause: float,
                      declared: int | None = None) -> int:
    """POST ``body`` in ``pieces`` with ``pause`` seconds between them; the answer's status code (0: connection lost).

    The answer is read while the body is still being sent, so a server that answers early
    (408, 413, 429, 503) is seen at once.
    """
    import asyncio

    reader, writer = await asyncio.open_connection(host, port)
    head = (f"POST /api/submissions HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/zip\r\nContent-Length: {len(body) if declared is None else declared}\r\n"
            "Connection: close\r\n\r\n").encode()

    async def send():
        try:
            writer.write(head)
            step = max(1, -(-len(body) // max(pieces, 1)))
            for i in range(0, len(body), step):
                await writer.drain()
                await asyncio.sleep(pause)
                writer.write(body[i:i + step])
            await writer.drain()
        except (ConnectionError, OSError):
            pass

    sender = asyncio.create_task(send())
    try:
        line = await reader.readline()
        return int(line.split()[1]) if line.startswith(b"HTTP/") else 0
    except (ConnectionError, OSError, IndexError, ValueError):
        return 0
    finally:
        sender.cancel()
        writer.close()


async def _raw_get(host: str, port: int, path: str) -> tuple[int, float]:
    """GET ``path``, reading the whole answer; ``(status, seconds)``."""
    import asyncio

    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, time.perf_counter() - t0


def uploads_and_pages(url: str, token: str, *, n_uploads: int = 200, body: bytes = b"x" * 20_000, pieces: int = 10,
                      pause: float = 0.3, paths: tuple[str, ...] = ("/api/health", "/"), n_idle: int = 10,
                      n_pages: int = 20, timeout: float = 120.0) -> dict:
    """Pages fetched while ``n_uploads`` slow uploads are in flight, against a live service; bounded in count and time.

    First ``n_idle`` requests of each path with nothing else running (idle latency), then the
    uploads start (each sends ``body`` in ``pieces`` with ``pause`` s between them) and, once
    they are all connected, ``n_pages`` requests of each path go out one after the other.
    Returns ``{"idle": {path: [s]}, "busy": {path: [s]}, "busy_status": [codes], "in_flight": [n at each
    page request], "upload_status": [codes]}``. Raises TimeoutError past ``timeout`` seconds.
    """
    import asyncio
    from urllib.parse import urlparse

    u = urlparse(url)
    host, port = u.hostname, u.port

    async def main():
        out = {"idle": {p: [] for p in paths}, "busy": {p: [] for p in paths}, "busy_status": [], "in_flight": []}
        for _ in range(n_idle):
            for p in paths:
                out["idle"][p].append((await _raw_get(host, port, p))[1])
        done = [0]

        async def one():
            try:
                return await raw_upload(host, port, token, body, pieces, pause)
            finally:
                done[0] += 1

        tasks = [asyncio.create_task(one()) for _ in range(n_uploads)]
        await asyncio.sleep(pause)  # every upload has connected and sent its headers
        for _ in range(n_pages):
            for p in paths:
                out["in_flight"].append(n_uploads - done[0])
                code, s = await _raw_get(host, port, p)
                out["busy"][p].append(s)
                out["busy_status"].append(code)
        out["upload_status"] = list(await asyncio.gather(*tasks))
        return out

    async def bounded():
        return await asyncio.wait_for(main(), timeout)

    try:
        return asyncio.run(bounded())
    except asyncio.TimeoutError:
        raise TimeoutError(f"load test did not finish within {timeout:g} s") from None
