"""The leaderboard web service: an ASGI app (Starlette) served by uvicorn.

Routes
------
``POST /api/submissions``
    Body: the bundle zip (``Content-Type: application/zip``), streamed to disk with a size
    limit (413 past it) and a deadline (408 for a body that trickles in). Auth:
    ``Authorization: Bearer <team token>`` (401 without a valid token; tokens are stored
    hashed). The bundle is validated at once with the same code as ``brainlid submit check``
    (:func:`brainlid.leaderboard.scoring.check_bundle`, ``score=False``) in a bounded pool of
    its own, never on the threads that serve pages: a bad bundle is answered 422 with the
    reason and recorded as ``rejected`` (its file deleted); a valid one is renamed into the
    bundle store and queued (202); the same bundle again from the same team answers 200 with
    the existing id. Too many uploads at once: 503 (``Retry-After``); over the team's rate or
    in-flight limit: 429. Scoring happens in a worker (:mod:`brainlid.leaderboard.uploads`).
``GET /api/submissions/{id}``
    ``{"id", "status": queued|scoring|scored|rejected, "reason", "scores": [...]}``.
``GET /api/leaderboard[?benchmark=ID][&page=N][&per_page=M]``
    One page of the board rows as a JSON list (default 100 rows a page, at most 500); the
    ``Link`` header (``rel="first|prev|next|last"``) and ``X-Total-Count``/``X-Page``/``X-Pages``
    say where the others are.
``GET /[?benchmark=&q=&sort=&desc=&page=&per_page=]``, ``GET /entries/{id}``, ``GET /leaderboard.csv``
    The pages (:mod:`brainlid.leaderboard.site`); the CSV (:mod:`brainlid.leaderboard.board`) holds every row.

Every response carries a Content-Security-Policy without ``'unsafe-inline'`` (the page's one
inline style and script are allowed by hash) and with ``frame-ancestors 'none'``. A NUL or
other control character in the path or the query is answered 404 / 422 before any route runs.
JSON is written as ASCII without NaN, so no stored text can make a route fail. Authentication
is ``Authorization: Bearer <token>`` only.
``GET /api/health``
    Queue counts.
"""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from ..config import brainlid_home
from ..errors import require
from . import board, site
from . import queue as q
from .bundle import Limits
from .db import Database
from .scoring import BenchmarkData
from .uploads import UploadPolicy, Uploads, cleanup_storage
from .worker import Worker, default_memory_budget, stop_workers

__all__ = ["create_app", "default_storage"]


class _BadQuery(ValueError):
    """A query parameter the read routes cannot use (answered 422)."""


def default_storage(db: Database) -> Path:
    """Bundle storage beside a SQLite file (``<db>.bundles``), else ``$BRAINLID_HOME/leaderboard/bundles``."""
    if db.dialect == "sqlite":
        return db.path.with_name(db.path.name + ".bundles")
    return brainlid_home() / "leaderboard" / "bundles"


def create_app(db_url: str | None = None, *, storage: str | os.PathLike | None = None, data_root=None,
               limits: Limits | None = None, workers: int = 1, lease_seconds: float = 60.0, max_attempts: int = 3,
               title: str = "brainlid leaderboard", private: tuple[str, ...] = (), uploads: UploadPolicy | None = None,
               max_lease_expiries: int = 5, memory_budget: int | None = None, stop_grace: float = 30.0):
    """Build the ASGI app.

    Parameters
    ----------
    db_url : database URL (see :mod:`brainlid.leaderboard.db`)
    storage : folder for uploaded bundles (``incoming/`` while streaming, ``bundles/`` once accepted)
    data_root : the benchmarks' data root on the server
    limits : upload and bundle limits
    workers : in-process scoring threads (0: run ``brainlid leaderboard worker`` separately)
    private : benchmark ids whose test responses are private (recorded in the database)
    uploads : :class:`~brainlid.leaderboard.uploads.UploadPolicy` (timeouts, rates, caps; default: no
        per-team limits — ``brainlid leaderboard serve`` sets them)
    max_attempts, max_lease_expiries, lease_seconds : the in-process workers' fault limits
        (:class:`~brainlid.leaderboard.worker.Worker`)
    memory_budget : bytes a bundle's scoring may need, checked at upload and by the in-process
        workers (None: half the machine's memory; 0: no check)
    stop_grace : seconds a graceful stop waits for a job being scored before giving it back to
        the queue (at no cost to the submitter)
    """
    require("starlette", "leaderboard", "the leaderboard service")
    # optional: starlette (the leaderboard extra), needed only to build the app
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    db = Database(db_url)
    for b in private:
        q.set_benchmark_privacy(db, b, True)
    store = Path(storage) if storage else default_storage(db)
    (store / "incoming").mkdir(parents=True, exist_ok=True)
    (store / "bundles").mkdir(parents=True, exist_ok=True)
    limits = limits or Limits()
    data = BenchmarkData(data_root)
    stop = threading.Event()
    threads: list[tuple[Worker, threading.Thread]] = []
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    policy = replace(uploads or UploadPolicy(), memory_budget=budget)
    upload = Uploads(db, store, data, limits, policy)

    @asynccontextmanager
    async def lifespan(app):
        cleanup_storage(db, store, policy.body_timeout)
        for i in range(int(workers)):
            w = Worker(db, data, lease_seconds=lease_seconds, max_attempts=max_attempts,
                       max_lease_expiries=max_lease_expiries, memory_budget=budget, limits=limits)
            t = threading.Thread(target=w.run, args=(stop,), name=f"brainlid-worker-{i}", daemon=True)
            t.start()
            threads.append((w, t))
        try:
            yield
        finally:
            stop_workers(threads, stop, stop_grace)  # a job still being scored goes back to the queue at no cost
            upload.close()

    async def get_submission(request: Request):
        sid = request.path_params["id"]
        sub = await run_in_threadpool(q.get_submission, db, sid)
        if sub is None:
            return JSONResponse({"error": f"no submission {sid}"}, status_code=404)
        out = {k: sub[k] for k in ("id", "status", "reason", "benchmarks", "model_name", "created", "updated", "attempts")}
        out["team"] = sub.get("team")
        if sub["status"] == "scored":
            rows = await run_in_threadpool(db.query, "SELECT benchmark, layer, metric, value, ci_low, ci_high, ceiling, "
                                           "normalised FROM scores WHERE submission_id = ? AND split = 'test' AND selected = 1",
                                           (sid,))
            out["scores"] = rows
        return _json(out)

    def _json(obj, status_code: int = 200, headers: dict | None = None) -> Response:
        # ASCII JSON without NaN: any stored text encodes, nothing stored can make a route fail
        return Response(board.json_text(obj), status_code=status_code, media_type="application/json", headers=headers)

    def _page_args(request: Request) -> tuple[int, int]:
        p = request.query_params
        out = []
        for key, default, hi in (("page", 1, 10**9), ("per_page", board.PER_PAGE, board.MAX_PER_PAGE)):
            raw = p.get(key, "")
            if raw == "":
                out.append(default)
                continue
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 12) or not 1 <= int(raw) <= hi:
                raise _BadQuery(f"{key} must be an integer from 1 to {hi}")
            out.append(int(raw))
        return out[0], out[1]

    async def api_board(request: Request):
        try:
            page, per_page = _page_args(request)
        except _BadQuery as exc:
            return _json({"error": str(exc)}, status_code=422)
        benchmark = request.query_params.get("benchmark") or None
        rows = await run_in_threadpool(board.board_rows, db, benchmark)
        shown, page, pages = board.paginate(rows, page, per_page)
        base = {"benchmark": benchmark or "", "per_page": per_page if per_page != board.PER_PAGE else ""}
        links = [f'<{request.url.path}{site.live_href(**base, page=n)}>; rel="{rel}"'
                 for rel, n in (("first", 1), ("prev", page - 1), ("next", page + 1), ("last", pages)) if 1 <= n <= pages]
        return _json(shown, headers={"link": ", ".join(links), "x-total-count": str(len(rows)),
                                     "x-page": str(page), "x-pages": str(pages)})

    async def index(request: Request):
        p = request.query_params
        try:
            page_no, per_page = _page_args(request)
        except _BadQuery as exc:
            return HTMLResponse(f"<!doctype html><title>bad request</title><p>{site.e(exc)}</p>", status_code=422)
        rows = await run_in_threadpool(board.board_rows, db)
        page = site.render_index(rows, title=title, live=True, benchmark=p.get("benchmark", ""), text=p.get("q", ""),
                                 sort=p.get("sort", ""), desc=p.get("desc", "1") != "0", page=page_no, per_page=per_page)
        return HTMLResponse(page)

    async def entry(request: Request):
        d = await run_in_threadpool(board.entry_data, db, request.path_params["id"])
        if d is None or d["submission"]["status"] not in ("scored", "rejected", "queued", "scoring"):
            return HTMLResponse("<!doctype html><title>not found</title><p>No such entry.</p>", status_code=404)
        return HTMLResponse(site.render_entry(d, title=title))

    async def board_csv(request: Request):
        rows = await run_in_threadpool(board.board_rows, db, request.query_params.get("benchmark") or None)
        return PlainTextResponse(board.board_csv(rows), media_type="text/csv",
                                 headers={"content-disposition": "attachment; filename=leaderboard.csv"})

    async def health(request: Request):
        return _json({"ok": True, "queue": await run_in_threadpool(q.status_counts, db)})

    routes = [
        Route("/api/submissions", upload.handle, methods=["POST"]),
        Route("/api/submissions/{id}", get_submission, methods=["GET"]),
        Route("/api/leaderboard", api_board, methods=["GET"]),
        Route("/api/health", health, methods=["GET"]),
        Route("/", index, methods=["GET"]),
        Route("/entries/{id}", entry, methods=["GET"]),
        Route("/leaderboard.csv", board_csv, methods=["GET"]),
    ]

    async def security_headers(request, call_next):
        # a NUL or control character in the path or the query is never a valid id or filter (and PostgreSQL
        # cannot even compare with it): answer 404 / 422 before any route runs
        if any(ord(c) < 32 or ord(c) == 127 for c in request.scope.get("path", "")):
            resp = Response("not found", status_code=404, media_type="text/plain")
        elif any(ord(c) < 32 or ord(c) == 127 for kv in request.query_params.multi_items() for part in kv for c in part):
            resp = _json({"error": "a query parameter holds a control character"}, status_code=422)
        else:
            resp = await call_next(request)
        resp.headers.setdefault("x-content-type-options", "nosniff")
        resp.headers.setdefault("content-security-policy", site.CSP_HEADER)
        resp.headers.setdefault("x-frame-options", "DENY")
        resp.headers.setdefault("referrer-policy", "no-referrer")
        return resp

    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(BaseHTTPMiddleware, dispatch=security_headers)])
    app.state.db = db
    app.state.storage = store
    return app
