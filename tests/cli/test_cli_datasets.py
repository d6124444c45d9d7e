"""`brainlid datasets list | info | check | fetch`."""

from __future__ import annotations

import functools
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brainlid.cli import main
from brainlid.data.fixtures import write_nsd, write_things_eeg2


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
    assert main(["datasets", "check", "nsd", "--root", str(copy / "missing")]) == 3
    out = capsys.readouterr().out
    assert "root missing" in out and out.strip().splitlines()[-1].startswith("nsd copy: NOT usable (exit 3): root is missing")


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


def _check(capsys, *args):
    code = main(["datasets", "check", *args])
    out = capsys.readouterr()
    return code, out.out.strip().splitlines()[-1] if out.out.strip() else "", out.err


def test_check_exit_code_says_whether_the_request_is_usable(copy, tmp_path, capsys):
    """`check` used to exit 0 on an empty root ("0 present, 3 missing"): scripts could not gate on it."""
    (tmp_path / "empty").mkdir()
    code, last, _ = _check(capsys, "nsd", "--root", str(tmp_path / "empty"))
    assert code == 3 and last.startswith("nsd copy: NOT usable (exit 3): nsd_expdesign.mat is missing")
    code, last, _ = _check(capsys, "nsd", "--root", str(copy), "--subject", "1")
    assert (code, last) == (0, "subject 1: usable")  # func1pt8mm is complete; the other spaces were never fetched
    code, last, _ = _check(capsys, "nsd", "--root", str(copy), "--subject", "1", "--space", "func1pt8mm")
    assert (code, last) == (0, "subject 1, func1pt8mm: usable")
    code, last, _ = _check(capsys, "nsd", "--root", str(copy), "--subject", "1", "--space", "func1mm")
    assert code == 3 and last.startswith("subject 1, func1mm: NOT usable (exit 3)")
    code, out, err = _check(capsys, "nsd", "--root", str(copy), "--space", "func9mm")
    assert code == 1 and "no space 'func9mm'; spaces: fsaverage, func1mm, func1pt8mm, nativesurface" in err
    assert main(["datasets", "check", "nsd", "--root", str(copy), "--space", "func1mm", "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["usable"] is False and doc["problems"]


def test_check_damaged_and_optional_files(copy, tmp_path, capsys):
    import shutil

    root = tmp_path / "nsd"
    shutil.copytree(copy, root)
    (root / "nsddata_stimuli/stimuli/nsd/nsd_stimuli.hdf5").unlink()  # optional (fetch --with-optional)
    code, last, _ = _check(capsys, "nsd", "--root", str(root), "--space", "func1pt8mm")
    assert (code, last) == (0, "func1pt8mm: usable")
    session = next((root / "nsddata_betas").rglob("betas_session02.hdf5"))
    session.write_bytes(session.read_bytes()[:100])  # truncated: unreadable
    code, last, _ = _check(capsys, "nsd", "--root", str(root), "--space", "func1pt8mm")
    assert code == 3 and "1 file(s) missing or unreadable (betas_session02.hdf5)" in last
    (root / "nsddata/experiments/nsd/nsd_expdesign.mat").unlink()  # shared and required
    code, last, _ = _check(capsys, "nsd", "--root", str(root), "--subject", "1")
    assert code == 3 and "nsd_expdesign.mat is missing" in last


def test_check_subject_of_a_dataset_with_shared_files(tmp_path, capsys):
    root = write_things_eeg2(tmp_path / "eeg")
    assert _check(capsys, "things_eeg2", "--root", str(root), "--subject", "1")[:2] == (0, "subject 1: usable")
    code, last, _ = _check(capsys, "things_eeg2", "--root", str(root), "--subject", "2")
    assert code == 3 and "sub-02/preprocessed_eeg_training.npy" in last


def test_check_help_lists_exit_codes(capsys):
    assert main(["datasets", "check", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Exit codes:" in out and "  3  not usable" in out and "  0  usable" in out
