"""The worker in-process, baselines as reference rows, and the single-machine service (in-process worker)."""

from __future__ import annotations

import numpy as np
import pytest

from brainlid.leaderboard import queue as q
from brainlid.leaderboard.bundle import write_bundle
from brainlid.leaderboard.db import Database
from brainlid.leaderboard.scoring import check_bundle
from brainlid.leaderboard.board import board_rows
from brainlid.leaderboard.worker import Worker, add_baselines
from harness import ServiceProcess

BENCH = "nsd.subj01.EBA.encoding"
NET = """
import torch
class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3)
        self.pool = torch.nn.AdaptiveAvgPool2d(2)
        self.fc = torch.nn.Linear(24, 8)
    def forward(self, x):
        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))
"""


@pytest.mark.slow  # worker start-up (imports, first-call compilation) dominates
def test_worker_scores_what_check_reports(tmp_path, board_data):
    """The worker stores exactly the rows check_bundle computes; a bad bundle gets check's reason; a missing file too."""
    db = Database(tmp_path / "b.sqlite")
    ids = board_data.ids(BENCH)
    rng = np.random.default_rng(1)
    good = write_bundle(tmp_path / "g.zip", {"a": rng.standard_normal((ids.size, 9)).astype(np.float32)}, ids, [BENCH],
                        {"model_name": "good"})
    bad = write_bundle(tmp_path / "x.zip", {"a": rng.standard_normal((ids.size, 3)).astype(np.float32)}, ids[::-1], [BENCH], {"model_name": "bad"})
    for sid, path in (("g", good), ("x", bad), ("m", tmp_path / "missing.zip")):
        q.enqueue(db, submission_id=sid, team_id=None, benchmarks=[BENCH], model_name=sid, metadata={}, bundle_path=str(path),
                  bundle_sha256="", size_bytes=1)
    w = Worker(db, board_data, lease_seconds=30)
    assert w.run(exit_when_empty=True) == 3
    st = {s: q.get_submission(db, s) for s in "gxm"}
    assert [st[s]["status"] for s in "gxm"] == ["scored", "rejected", "rejected"]
    assert "wrong order" in st["x"]["reason"] and "missing on the server" in st["m"]["reason"]
    ref = check_bundle(good, data=board_data).scores
    got = db.query("SELECT layer, split, metric, value FROM scores WHERE submission_id = 'g' ORDER BY split, metric")
    ref = ref.sort_values(["split", "metric"])
    np.testing.assert_allclose([g["value"] for g in got], ref["value"].to_numpy(float), rtol=1e-12)
    assert db.query("SELECT COUNT(*) AS n FROM geometry WHERE submission_id = 'g'")[0]["n"] > 0


def test_baselines_are_reference_rows(tmp_path, leaderboard_nsd, monkeypatch):
    monkeypatch.setenv("BRAINLID_HOME", str(tmp_path / "home"))
    net = tmp_path / "net.py"
    net.write_text(NET)
    db = Database(tmp_path / "b.sqlite")
    ids = add_baselines(db, f"module:{net}:Net", [BENCH], root=leaderboard_nsd, layers=["conv", "fc"])
    rows = board_rows(db)
    names = {r["model"] for r in rows}
    assert names == {"baseline:pixels", f"module:{net}:Net@random", f"module:{net}:Net#shuffled"}, names
    assert len(ids) == 3 and {r["kind"] for r in rows} == {"baseline"}
    assert all(r["value"] is not None and -1 <= r["value"] <= 1 for r in rows)
    from brainlid.errors import InputError

    with pytest.raises(InputError, match="need --model"):
        add_baselines(db, None, [BENCH], root=leaderboard_nsd)
    assert len(add_baselines(db, None, [BENCH], root=leaderboard_nsd, which=["pixels"])) == 1


@pytest.mark.slow  # worker start-up (imports, first-call compilation) dominates
def test_single_machine_service_scores_in_process(tmp_path, leaderboard_nsd, board_data):
    """`leaderboard serve --workers 1`: upload → scored without a separate worker; `submit send --wait` reports it."""
    pytest.importorskip("uvicorn")
    from click.testing import CliRunner

    from brainlid.cli import cli

    url = f"sqlite:///{tmp_path / 'board.sqlite'}"
    token = q.create_team(Database(url), "lab")
    ids = board_data.ids(BENCH)
    b = write_bundle(tmp_path / "b.zip", {"a": np.random.default_rng(0).standard_normal((ids.size, 5)).astype(np.float32)},
                     ids, [BENCH], {"model_name": "m"})
    with ServiceProcess(url, data_root=leaderboard_nsd, workers=1, home=tmp_path / "home") as svc:
        res = CliRunner().invoke(cli, ["submit", "send", str(b), "--server", svc.url, "--token", token, "--wait",
                                       "--timeout", "120"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].endswith(": queued") and lines[1].endswith(": scored")
    assert any(BENCH in ln and "encoding_r" in ln for ln in lines[2:])
