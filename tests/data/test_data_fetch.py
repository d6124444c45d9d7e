"""Resumable, verified downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from brainlid.data import nsd
from brainlid.data.fetch import MANIFEST_NAME, download, fetch_dataset, planned_files
from brainlid.data.fixtures import write_nsd
from brainlid.errors import DatasetNotFoundError, FileFormatError, InputError


class _Handler(BaseHTTPRequestHandler):
    """Serves files under ``server.base``; honours ``Range: bytes=N-``; can drop the connection mid-file."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        rel = self.path.lstrip("/").split("?")[0]
        from urllib.parse import unquote

        path = Path(srv.base) / unquote(rel)
        srv.requests.append((rel, self.headers.get("Range")))
        if not path.is_file():
            self.send_error(404, "not found")
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rel in srv.drop_once:  # announce the full length, send half, hang up
            srv.drop_once.discard(rel)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server(tmp_path):
    base = tmp_path / "served"
    base.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.base, httpd.requests, httpd.drop_once, httpd.honour_range = base, [], set(), True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _blob(path: Path, n: int = 300_000, seed: int = 0) -> bytes:
    data = np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def test_download_plain(server, tmp_path):
    data = _blob(server.base / "a/b.bin")
    out = download(f"{server.url}/a/b.bin", tmp_path / "dl/b.bin")
    assert (tmp_path / "dl/b.bin").read_bytes() == data
    assert out["sha256"] == hashlib.sha256(data).hexdigest() and out["size"] == len(data)
    assert not (tmp_path / "dl/b.bin.part").exists()


def test_dropped_connection_resumes_with_range(server, tmp_path):
    data = _blob(server.base / "big.bin", 1_000_000, seed=1)
    server.drop_once.add("big.bin")
    dest = tmp_path / "big.bin"
    # first attempt gets half and fails; with no retries the partial file stays as .part only
    with pytest.raises(FileFormatError, match="failed after 1 attempts"):
        download(f"{server.url}/big.bin", dest, retries=0, backoff=0)
    part = dest.with_name("big.bin.part")
    assert not dest.exists() and 0 < part.stat().st_size < len(data)
    half = part.stat().st_size
    out = download(f"{server.url}/big.bin", dest, backoff=0)
    assert dest.read_bytes() == data and not part.exists()
    assert server.requests[-1] == ("big.bin", f"bytes={half}-") and out["resumed"] == half
    # the same within one call: drop, then the retry resumes
    server.drop_once.add("big.bin")
    dest2 = tmp_path / "again.bin"
    download(f"{server.url}/big.bin", dest2, backoff=0)
    assert dest2.read_bytes() == data
    assert server.requests[-1][1] is not None and server.requests[-1][1].startswith("bytes=")


def test_server_ignoring_range_restarts(server, tmp_path):
    data = _blob(server.base / "c.bin", seed=2)
    server.honour_range = False
    dest = tmp_path / "c.bin"
    dest.with_name("c.bin.part").write_bytes(b"garbage!")
    download(f"{server.url}/c.bin", dest, backoff=0)
    assert dest.read_bytes() == data


def test_checksum_and_404(server, tmp_path):
    _blob(server.base / "d.bin", seed=3)
    with pytest.raises(FileFormatError, match="SHA-256"):
        download(f"{server.url}/d.bin", tmp_path / "d.bin", sha256="0" * 64)
    assert not (tmp_path / "d.bin").exists() and not (tmp_path / "d.bin.part").exists()
    with pytest.raises(DatasetNotFoundError, match="HTTP 404"):
        download(f"{server.url}/nope.bin", tmp_path / "n.bin")
    with pytest.raises(FileFormatError, match="expects 5"):
        download(f"{server.url}/d.bin", tmp_path / "e.bin", expected_size=5)


def test_fetch_nsd_subject_space(server, tmp_path):
    write_nsd(server.base, subjects=(1,), n_images=12, n_shared=3, n_sessions=2, shape=(5, 6, 4),
              spaces=("func1pt8mm",), n_total=300, seed=5)
    dest = tmp_path / "copy"
    with pytest.raises(InputError, match="accept-terms"):
        fetch_dataset("nsd", dest, 1, "func1pt8mm", base_url=server.url, sessions=[1, 2])
    server.drop_once.add("nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5")
    res = fetch_dataset("nsd", dest, 1, "func1pt8mm", accept_terms=True, base_url=server.url, sessions=[1, 2])
    rels = planned_files("nsd", 1, "func1pt8mm", sessions=[1, 2])
    assert [r["relpath"] for r in res] == rels and all(r["status"] == "downloaded" for r in res)
    assert not server.drop_once  # the drop happened ...
    s2 = [rng for rel, rng in server.requests if rel.endswith("betas_session02.hdf5")]
    assert s2[0] is None and s2[1].startswith("bytes=")  # ... and the retry resumed with a Range request
    assert "nsddata/ppdata/subj01/func1pt8mm/roi/lh.floc-faces.nii.gz" in rels
    for rel in rels:
        assert (dest / rel).read_bytes() == (server.base / rel).read_bytes()
    manifest = json.loads((dest / MANIFEST_NAME).read_text())
    rel = rels[2]
    assert manifest[rel]["sha256"] == hashlib.sha256((server.base / rel).read_bytes()).hexdigest()
    _, brain = nsd.load(dest, subject=1, images=False)  # the fetched copy loads
    _, ref = nsd.load(server.base, subject=1, images=False)
    np.testing.assert_array_equal(brain.responses, ref.responses)
    # second run: nothing downloaded; verify=True catches a corrupted file and fetches it again
    n_req = len(server.requests)
    res2 = fetch_dataset("nsd", dest, 1, "func1pt8mm", accept_terms=True, base_url=server.url, sessions=[1, 2])
    assert all(r["status"] == "present" for r in res2) and len(server.requests) == n_req
    victim = dest / rels[3]
    good = victim.read_bytes()
    victim.write_bytes(bytes([good[0] ^ 1]) + good[1:])
    res3 = fetch_dataset("nsd", dest, 1, "func1pt8mm", accept_terms=True, base_url=server.url, sessions=[1, 2], verify=True)
    assert [r["relpath"] for r in res3 if r["status"] == "downloaded"] == [rels[3]]
    assert victim.read_bytes() == good


def test_planned_files_and_refusals():
    rels = planned_files("nsd", 3, "fsaverage")
    assert sum("betas_session" in r for r in rels) == 2 * 32  # subject 3 completed 32 sessions, 2 hemispheres
    assert "nsddata/freesurfer/fsaverage/label/prf-visualrois.mgz.ctab" in rels
    assert not any("nsd_stimuli.hdf5" in r for r in rels)
    assert any("nsd_stimuli.hdf5" in r for r in planned_files("nsd", 3, "fsaverage", with_optional=True))
    with pytest.raises(InputError, match="subject 9 out of range"):
        planned_files("nsd", 9, "fsaverage")
    with pytest.raises(InputError, match="unknown space"):
        planned_files("nsd", 1, "mni")
    with pytest.raises(InputError, match="--base-url"):
        fetch_dataset("algonauts2023", "/tmp/unused-brainlid", 1, "challenge", accept_terms=True)


def test_fetch_tolerates_files_the_card_marks_may_be_absent(server, tmp_path):
    write_nsd(server.base, subjects=(1,), n_images=12, n_shared=3, n_sessions=2, shape=(5, 6, 4),
              spaces=("func1pt8mm",), n_total=300, seed=6)
    (server.base / "nsddata/freesurfer/subj01/label/nsdgeneral.mgz.ctab").unlink()  # uncertain on the real server
    res = fetch_dataset("nsd", tmp_path / "c", 1, "func1pt8mm", accept_terms=True, base_url=server.url, sessions=[1])
    status = {r["relpath"]: r["status"] for r in res}
    assert status["nsddata/freesurfer/subj01/label/nsdgeneral.mgz.ctab"] == "absent"
    assert sum(s == "downloaded" for s in status.values()) == len(res) - 1
    (server.base / "nsddata/experiments/nsd/nsd_expdesign.mat").unlink()  # required: a 404 is fatal
    with pytest.raises(DatasetNotFoundError, match="nsd_expdesign.mat answered HTTP 404"):
        fetch_dataset("nsd", tmp_path / "d", 1, "func1pt8mm", accept_terms=True, base_url=server.url, sessions=[1])
