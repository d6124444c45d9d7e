"""The submitter's side of the API: upload a bundle (streamed) and poll its status (stdlib only)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import BrainlidError

__all__ = ["send_bundle", "get_status", "poll", "ServerError"]


class ServerError(BrainlidError):
    """The board could not be reached or answered with an unexpected error."""


def _json(resp_or_err) -> dict:
    try:
        return json.loads(resp_or_err.read().decode("utf-8") or "{}")
    except ValueError:
        return {}


def send_bundle(path: str | os.PathLike, server: str, token: str, *, timeout: float = 600.0) -> dict:
    """POST a bundle to ``<server>/api/submissions``; returns the JSON answer (``id``, ``status``, ``reason``).

    A 401/413/422 answer is returned as ``{"status": "rejected", "reason": ...}``, not raised.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        req = urllib.request.Request(
            server.rstrip("/") + "/api/submissions", data=fh, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/zip", "Content-Length": str(size)})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return _json(resp)
        except urllib.error.HTTPError as err:
            body = _json(err)
            if err.code in (400, 401, 413, 422):
                return {"status": "rejected", "reason": body.get("reason", f"HTTP {err.code}"), **body}
            raise ServerError(f"{server} answered HTTP {err.code}: {body or err.reason}") from None
        except (urllib.error.URLError, OSError) as err:
            raise ServerError(f"cannot reach {server}: {getattr(err, 'reason', err)}") from None


def get_status(server: str, submission_id: str, *, timeout: float = 30.0) -> dict:
    """``GET /api/submissions/{id}``."""
    try:
        with urllib.request.urlopen(f"{server.rstrip('/')}/api/submissions/{submission_id}", timeout=timeout) as resp:
            return _json(resp)
    except urllib.error.HTTPError as err:
        raise ServerError(f"{server} answered HTTP {err.code} for submission {submission_id}") from None
    except (urllib.error.URLError, OSError) as err:
        raise ServerError(f"cannot reach {server}: {getattr(err, 'reason', err)}") from None


def poll(server: str, submission_id: str, *, timeout: float = 3600.0, interval: float = 2.0) -> dict:
    """Poll until the submission is ``scored`` or ``rejected`` (or ``timeout`` seconds pass)."""
    end = time.monotonic() + timeout
    while True:
        st = get_status(server, submission_id)
        if st.get("status") in ("scored", "rejected") or time.monotonic() > end:
            return st
        time.sleep(interval)
