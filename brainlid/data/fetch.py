"""Download dataset files over HTTP(S): resumable, size-checked, checksummed, atomic.

* Each file is downloaded to ``<name>.part`` beside its final path and renamed only when
  complete and verified, so a partial file never sits under the final name.
* An interrupted download resumes from the ``.part`` size with an HTTP ``Range`` request
  (``206 Partial Content``); a server that ignores ``Range`` (``200``) restarts the file.
* Verification: the size announced by the server (``Content-Length`` / ``Content-Range``) and
  the card's expected size when given; the SHA-256 from the card's ``[fetch.sha256]`` table when it
  has one. NSD publishes no checksums, so the SHA-256 of the first download is *recorded* in
  ``<root>/.brainlid-fetch.json`` (relative path → size, sha256, url, time) and checked when the
  file is verified again (``verify=True``).
* Nothing is downloaded unless the user accepted the dataset's terms (``accept_terms=True``,
  ``--accept-terms`` on the command line).

Only :mod:`urllib` from the standard library is used.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterable

from .._atomic import atomic_write_text
from ..errors import DatasetNotFoundError, FileFormatError, InputError
from .cards import DatasetCard, get_card

__all__ = ["download", "planned_files", "fetch_dataset", "MANIFEST_NAME", "sha256_file"]

MANIFEST_NAME = ".brainlid-fetch.json"
_CHUNK = 1 << 20
_TRANSIENT = (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout, TimeoutError)


def sha256_file(path: str | os.PathLike, chunk: int = _CHUNK) -> str:
    """SHA-256 hex digest of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _total_from_headers(resp, start: int) -> int | None:
    cr = resp.headers.get("Content-Range")
    if cr:
        m = re.match(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", cr)
        if m and m.group(3) != "*":
            return int(m.group(3))
    cl = resp.headers.get("Content-Length")
    if cl is not None:
        return int(cl) + (start if resp.status == 206 else 0)
    return None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    expected_size: int | None = None,
    sha256: str | None = None,
    retries: int = 5,
    timeout: float = 60.0,
    backoff: float = 0.5,
    progress: Callable[[int, int | None], None] | None = None,
) -> dict:
    """Download ``url`` to ``dest``, resuming a previous ``dest.part`` if present.

    Parameters
    ----------
    url : str
        HTTP(S) URL of the file.
    dest : path-like
        Final path; the file appears there only when complete and verified.
    expected_size : int, optional
        Size in bytes the file must have (else the server's announced size is used).
    sha256 : str, optional
        Hex digest the file must have.
    retries : int
        Attempts after a dropped connection or timeout; each resumes where the last stopped.
    progress : callable(done_bytes, total_bytes_or_None), optional

    Returns
    -------
    dict with ``path``, ``size``, ``sha256``, ``resumed`` (bytes that were already present).

    Raises
    ------
    DatasetNotFoundError
        The server answers 404 (or another 4xx).
    FileFormatError
        Size or checksum mismatch (the partial file is deleted) or every retry failed.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    resumed = part.stat().st_size if part.exists() else 0
    total: int | None = expected_size
    last_exc: Exception | None = None
    for attempt in range(retries + 1):
        start = part.stat().st_size if part.exists() else 0
        if total is not None and start == total:
            break
        if total is not None and start > total:
            part.unlink()
            start = 0
        req = urllib.request.Request(url, headers={"User-Agent": "brainlid-fetch"})
        if start:
            req.add_header("Range", f"bytes={start}-")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                if start and resp.status == 200:  # server ignored Range: start over
                    start = 0
                    mode = "wb"
                else:
                    mode = "ab" if start else "wb"
                announced = _total_from_headers(resp, start)
                if announced is not None:
                    if expected_size is not None and announced != expected_size:
                        raise FileFormatError(f"{url}: server announces {announced} bytes, the card expects {expected_size}")
                    total = announced
                done = start
                with open(part, mode) as fh:
                    while True:
                        block = resp.read(_CHUNK)
                        if not block:
                            break
                        fh.write(block)
                        done += len(block)
                        if progress is not None:
                            progress(done, total)
                if total is None:
                    total = done  # no length announced: accept what arrived once the stream ended cleanly
                if done < total:
                    raise http.client.IncompleteRead(b"", total - done)
                break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and start:  # range not satisfiable: our part is complete or bogus
                total = total if total is not None else start
                if start == total:
                    break
                part.unlink()
                continue
            if 400 <= exc.code < 500:
                raise DatasetNotFoundError(f"download failed: {url} answered HTTP {exc.code} ({exc.reason})") from exc
            last_exc = exc
        except _TRANSIENT as exc:
            last_exc = exc
        if attempt < retries:
            time.sleep(backoff * (2**attempt))
    else:
        raise FileFormatError(f"download of {url} failed after {retries + 1} attempts ({last_exc}); "
                              f"{part.name} keeps {part.stat().st_size if part.exists() else 0} bytes and the next run resumes")
    size = part.stat().st_size
    if total is not None and size != total:
        part.unlink()
        raise FileFormatError(f"download of {url}: got {size} bytes, expected {total}; partial file removed")
    digest = sha256_file(part)
    if sha256 is not None and digest.lower() != sha256.lower():
        part.unlink()
        raise FileFormatError(f"download of {url}: SHA-256 {digest} does not match the expected {sha256}; file removed")
    os.replace(part, dest)
    return {"path": str(dest), "size": size, "sha256": digest, "resumed": resumed}


# --------------------------------------------------------------------------------------- datasets
def _expand(card: DatasetCard, key: str, fields: dict, sessions: Iterable[int]) -> list[str]:
    """Relative paths of one file template, expanded over sessions, hemispheres and ROI files."""
    tmpl = card.files[key]
    combos = [dict(fields)]
    for name, values in (("session", list(sessions)), ("hemi", card.fetch.get("hemis", [])), ("roi", card.fetch.get("rois", []))):
        if "{" + name in tmpl:
            combos = [{**c, name: v} for c in combos for v in values]
    return [card.relpath(key, **c) for c in combos]


def planned_files(
    name: str,
    subject: int,
    space: str,
    *,
    sessions: Iterable[int] | None = None,
    with_optional: bool = False,
    **fields,
) -> list[str]:
    """Relative paths ``brainlid datasets fetch`` downloads for one subject and space (card-driven).

    Sessions default to ``1 … n_sessions[subject]`` from the card (when the templates use them).
    ``fields`` fill other placeholders (e.g. ``beta=...``; the card's ``[fetch.defaults]`` otherwise).
    """
    card = get_card(name)
    ids = card.subjects.get("ids", [])
    if ids and subject not in ids:
        raise InputError(f"{card.title}: subject {subject} out of range; subjects are {ids}")
    per_space = card.fetch.get("per_space", {})
    if space not in per_space:
        raise InputError(f"{card.title}: unknown space {space!r}; spaces: {', '.join(per_space)}")
    if sessions is None:
        n_sess = card.subjects.get("n_sessions")
        sessions = range(1, n_sess[ids.index(subject)] + 1) if n_sess else []
    fields = {"subject": subject, "space": space, **fields}
    keys = list(card.fetch.get("common", [])) + (list(card.fetch.get("optional", [])) if with_optional else []) + list(per_space[space])
    out: list[str] = []
    for key in keys:
        for rel in _expand(card, key, fields, sessions):
            if rel not in out:
                out.append(rel)
    return out


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST_NAME
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"cannot read the download manifest {path}: {exc}") from exc


def fetch_dataset(
    name: str,
    root: str | os.PathLike,
    subject: int,
    space: str,
    *,
    accept_terms: bool = False,
    base_url: str | None = None,
    sessions: Iterable[int] | None = None,
    with_optional: bool = False,
    verify: bool = False,
    retries: int = 5,
    progress: Callable[[str, int, int | None], None] | None = None,
    **fields,
) -> list[dict]:
    """Download the files one subject and space need into ``root`` (the card says which).

    Files the card lists under ``[fetch] may_be_absent`` (glob patterns of relative paths) that the
    server does not have (HTTP 404) are reported as ``absent`` instead of failing the whole fetch.
    Files already present with the size recorded in the manifest are skipped (with
    ``verify=True`` their SHA-256 is recomputed and compared with the recorded or published one;
    a mismatch re-downloads the file). Returns one dict per file: ``relpath``, ``status``
    (``downloaded`` / ``present`` / ``absent``), ``size``, ``sha256``.

    Raises
    ------
    InputError
        Terms not accepted, no download location, unknown subject or space.
    DatasetNotFoundError, FileFormatError
        From :func:`download`.
    """
    card = get_card(name)
    if card.fetch.get("needs_terms", True) and not accept_terms:
        raise InputError(
            f"{card.title}: refusing to download before you accept the terms of use. Read them with "
            f"`brainlid datasets info {card.name}`, then pass --accept-terms (accept_terms=True)."
        )
    base = base_url if base_url else card.fetch.get("base_url", "")
    if not base:
        raise InputError(f"{card.title} has no public download location; pass --base-url URL of a mirror with the same layout")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    published = card.fetch.get("sha256", {})
    manifest = _read_manifest(root)
    results = []
    for rel in planned_files(name, subject, space, sessions=sessions, with_optional=with_optional, **fields):
        dest = root / rel
        rec = manifest.get(rel, {})
        want_sha = published.get(rel) or rec.get("sha256")
        known = rec.get("size") == dest.stat().st_size if dest.exists() else False
        if known:
            if not verify or sha256_file(dest) == want_sha:
                results.append({"relpath": rel, "status": "present", "size": dest.stat().st_size, "sha256": rec.get("sha256")})
                continue
            dest.unlink()  # recorded checksum no longer matches: fetch again
        url = base.rstrip("/") + "/" + urllib.parse.quote(rel)
        cb = (lambda done, total, _rel=rel: progress(_rel, done, total)) if progress else None
        try:
            info = download(url, dest, sha256=published.get(rel), retries=retries, progress=cb)
        except DatasetNotFoundError:
            if any(fnmatch.fnmatch(rel, pat) for pat in card.fetch.get("may_be_absent", [])):
                results.append({"relpath": rel, "status": "absent", "size": 0, "sha256": None})
                continue
            raise
        manifest[rel] = {"size": info["size"], "sha256": info["sha256"], "url": url, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_text(root / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True))
        results.append({"relpath": rel, "status": "downloaded", "size": info["size"], "sha256": info["sha256"]})
    return results
