"""`brainlid datasets list | info | check | fetch`."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brainlid.cli import main
from brainlid.data.fixtures import write_nsd


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    r = tmp_path_factory.mktemp("nsdcli")
    return write_nsd(r, subjects=(1,), n_images=12, n_shared=3, n_sessions=2, shape=(5, 6, 4), spaces=("func1pt8mm",), n_total=300, seed=2)


def test_list_and_info(capsys):
    assert main(["datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "nsd " in out and "algonauts2023" in out and "brainlid.data.nsd" in out
    assert main(["datasets", "info", "nsd"]) == 0
    out = capsys.readouterr().out
    assert "@article{allen2022massive" in out and "Terms of use" in out and "betas_session{session:02d}.hdf5" in out
    assert main(["datasets", "info", "nope"]) == 1
    assert "brainlid: error: unknown dataset 'nope'" in capsys.readouterr().err


def test_check(copy, capsys):
    assert main(["datasets", "check", "nsd", "--root", str(copy), "--subject", "1"]) == 0
    out = capsys.readouterr().out
    assert "betas_session02.hdf5" in out and "subject 1: func1pt8mm 2 sessions, ncsnr present, ROIs" in out
    assert main(["datasets", "check", "nsd", "--root", str(copy), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["dataset"] == "nsd" and doc["summary"][0].startswith("subject 1:")
    st = {r["item"]: r["status"] for r in doc["files"] if r["subject"] == 1 and r["space"] == "func1pt8mm"}
    assert st["betas_session01.hdf5"] == "present" and st["ncsnr.nii.gz"] == "present"
    assert main(["datasets", "check", "nsd", "--root", str(copy / "missing")]) == 0
    assert "root missing" in capsys.readouterr().out


def test_fetch(copy, tmp_path, capsys):
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(copy))
    handler.log_message = lambda *a: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        args = ["datasets", "fetch", "nsd", "--root", str(tmp_path / "dl"), "--subject", "1", "--space", "func1pt8mm",
                "--base-url", url, "--session", "1", "--session", "2"]
        assert main(args) == 1
        assert "refusing to download" in capsys.readouterr().err
        assert not (tmp_path / "dl").exists()
        assert main(args + ["--accept-terms"]) == 0
        assert "downloaded" in capsys.readouterr().out
        rel = "nsddata_betas/ppdata/subj01/func1pt8mm/betas_fithrf_GLMdenoise_RR/betas_session02.hdf5"
        assert (tmp_path / "dl" / rel).read_bytes() == (copy / rel).read_bytes()
        assert main(args + ["--accept-terms"]) == 0
        assert "0 file(s) downloaded" in capsys.readouterr().out
    finally:
        httpd.shutdown()
        httpd.server_close()
