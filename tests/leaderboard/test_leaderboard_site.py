"""Board pages: rows, escaping, SVG, static build, no-JS sorting/filtering; and a headless-Chromium browser test."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from brainlid.leaderboard import queue as q
from brainlid.leaderboard.db import Database
from brainlid.leaderboard.board import board_csv, board_rows, entry_data
from brainlid.leaderboard.site import build_site, render_entry, render_index, svg_scatter
from brainlid.leaderboard.worker import add_reference_entry
from harness import ServiceProcess, wait_until
from support import REPO

EVIL = "<script>alert(1)</script>"
BENCH = "nsd.subj01.EBA.encoding"


def _rows(model, layers, values, bench=BENCH):
    rows = []
    for li, (layer, v) in enumerate(zip(layers, values)):
        for split in ("val", "test"):
            for metric, val in (("encoding_r", v), ("encoding_r2", v * v)):
                rows.append({"model": model, "layer": layer, "layer_index": li, "benchmark": bench, "dataset": "nsd",
                             "subject": "subj01", "roi": "EBA", "metric": metric, "split": split, "value": val,
                             "ci_low": val - 0.05, "ci_high": val + 0.05, "ceiling": 0.8, "normalised": val / 0.8,
                             "n_units": 30, "n_stimuli": 8, "selected": li == int(np.argmax(values))})
    return pd.DataFrame(rows)


def _geom(model, layers, lids):
    return pd.DataFrame([{"model": model, "layer": layer, "layer_index": li, "stimulus_set": "nsd.subj01.test", "n": 8,
                          "estimator": "mle", "K": k, "value": lid + k / 100}
                         for li, (layer, lid) in enumerate(zip(layers, lids)) for k in (5.0, 20.0, 50.0)])


def _entry(db, sid, name, values, lids, team="lab", md=None):
    token = q.create_team(db, team)
    tid = q.team_for_token(db, token)["team_id"]
    layers = [f"l{i}" for i in range(len(values))]
    q.enqueue(db, submission_id=sid, team_id=tid, benchmarks=[BENCH], model_name=name,
              metadata={"model_name": name, **(md or {})}, bundle_path="/x", bundle_sha256="ab" * 32, size_bytes=1)
    assert q.claim(db, "w", 60)["id"] == sid
    assert q.complete(db, sid, "w", _rows(name, layers, values), _geom(name, layers, lids))


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "board.sqlite")
    _entry(d, "e1", EVIL, [0.2, 0.45, 0.3], [4.0, 7.0, 9.0], team="<b>team</b>",
           md={"parameters": 25_000_000, "url": "javascript:alert(2)", "training_data": "<img src=x onerror=alert(3)>"})
    _entry(d, "e2", "ResNet", [0.1, 0.25], [3.0, 5.0], team="other", md={"url": "https://example.org/p?a=1&b=2"})
    add_reference_entry(d, "baseline:pixels", _rows("baseline:pixels", ["pixels"], [0.05]), _geom("baseline:pixels", ["pixels"], [12.0]),
                        metadata={"description": "baseline: pixels"})
    q.set_benchmark_privacy(d, BENCH, True)
    return d


def test_board_rows_pick_selected_test_layer(db):
    rows = board_rows(db)
    by = {r["model"]: r for r in rows}
    assert set(by) == {EVIL, "ResNet", "baseline:pixels"}
    assert by[EVIL]["layer"] == "l1" and by[EVIL]["value"] == pytest.approx(0.45) and by[EVIL]["r2"] == pytest.approx(0.45**2)
    assert by[EVIL]["normalised"] == pytest.approx(0.45 / 0.8) and by[EVIL]["lid"] == pytest.approx(7.2)  # MLE at K=20
    assert by["baseline:pixels"]["kind"] == "baseline" and by[EVIL]["test_set"] == "private"
    assert [r["model"] for r in rows] == [EVIL, "ResNet", "baseline:pixels"]  # entries by score, then baselines
    csv = board_csv(rows)
    assert csv.splitlines()[0].startswith("entry_id,kind,model") and len(csv.splitlines()) == 4


def test_pages_escape_everything(db):
    page = render_index(board_rows(db))
    assert EVIL not in page and html.escape(EVIL) in page
    assert "<b>team</b>" not in page and "&lt;b&gt;team&lt;/b&gt;" in page
    assert page.count("<script>") == 1  # only the page's own script
    assert "private-test" in page and 'class="baseline"' in page
    ent = render_entry(entry_data(db, "e1"))
    assert EVIL not in ent and "<img src=x" not in ent and "javascript:alert(2)" not in re.findall(r'href="([^"]*)"', ent).__str__()
    assert "<script>" not in ent
    ent2 = render_entry(entry_data(db, "e2"))
    assert 'href="https://example.org/p?a=1&amp;b=2"' in ent2
    for svg in re.findall(r"<svg.*?</svg>", page + ent, flags=re.S):
        ET.fromstring(svg)  # well-formed XML: nothing user-supplied broke out of a text node or attribute


def test_scatter_positions_follow_data():
    pts = [{"x": 1.0, "y": 0.0, "label": "a", "id": "a"}, {"x": 3.0, "y": 1.0, "label": "b", "id": "b"},
           {"x": 2.0, "y": 0.5, "label": "c", "id": "c", "kind": "baseline"}]
    svg = svg_scatter(pts, x_label="LID", y_label="score", link=lambda i: f"/entries/{i}")
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    circles = [(float(c.get("cx")), float(c.get("cy"))) for c in root.iter(ns + "circle")]
    assert len(circles) == 2 and circles[0][0] < circles[1][0] and circles[0][1] > circles[1][1]  # right and up
    assert len([r for r in root.iter(ns + "rect") if r.get("fill") == "#999"]) == 1  # the baseline's marker
    assert 'href="/entries/b"' in svg


def test_server_side_sort_filter_and_static_build(db, tmp_path):
    rows = board_rows(db)
    page = render_index(rows, sort="score", desc=False)
    order = re.findall(r'<tr class="(?:entry|baseline)"[^>]*><td><a href="/entries/(\w+)"', page)
    assert order[0] != "e1" and order[-1] == "e1"  # ascending: the best entry last
    page = render_index(rows, text="resnet")
    assert "/entries/e2" in page and "/entries/e1\"" not in page
    out = tmp_path / "site"
    paths = build_site(db, out)
    names = sorted(p.relative_to(out).as_posix() for p in paths)
    ids = [r["entry_id"] for r in rows]
    assert names == sorted(["index.html", "leaderboard.csv", "leaderboard.json"] + [f"entries/{i}.html" for i in ids])
    index = (out / "index.html").read_text()
    assert 'href="entries/e1.html"' in index and EVIL not in index
    assert 'href="../index.html"' in (out / "entries" / "e1.html").read_text()


def test_cli_build_and_token(db, tmp_path):
    from click.testing import CliRunner

    from brainlid.cli import cli

    res = CliRunner().invoke(cli, ["leaderboard", "token", "--db", str(db.path), "--team", "newlab"])
    assert res.exit_code == 0 and q.team_for_token(db, res.output.strip())["name"] == "newlab"
    res = CliRunner().invoke(cli, ["leaderboard", "build", "--db", str(db.path), "--out", str(tmp_path / "s")])
    assert res.exit_code == 0 and (tmp_path / "s" / "entries" / "e2.html").exists()


# --------------------------------------------------------------------------- the browser
def test_browser_sort_open_entry_and_escape(db, tmp_path, headless_chrome):
    """Headless Chromium on the live server: sort a column, open an entry, the script name renders as text."""
    pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    art = REPO / "test-artifacts"
    art.mkdir(exist_ok=True)
    with ServiceProcess(f"sqlite:///{db.path}", workers=0, home=tmp_path / "home") as svc:
        driver = headless_chrome(1300, 1000)
        driver.get(svc.url + "/")

        def models():
            return [r.find_element(By.CSS_SELECTOR, "td a").text
                    for r in driver.find_elements(By.CSS_SELECTOR, "#board tbody tr") if r.is_displayed()]

        assert models() == [EVIL, "ResNet", "baseline:pixels"]  # the name is text, not a script
        head = driver.find_element(By.CSS_SELECTOR, 'th[data-key="score"] a')
        th = driver.find_element(By.CSS_SELECTOR, 'th[data-key="score"]')
        head.click()  # first click: descending
        wait_until(lambda: th.get_attribute("aria-sort") == "descending", 10, 0.1, "descending sort")
        assert models() == [EVIL, "ResNet", "baseline:pixels"]
        head.click()  # second click: ascending
        wait_until(lambda: th.get_attribute("aria-sort") == "ascending", 10, 0.1, "ascending sort")
        assert models() == ["baseline:pixels", "ResNet", EVIL]
        assert "sort=" not in driver.current_url  # sorted in the page by the script, not by reloading
        driver.find_element(By.CSS_SELECTOR, 'th[data-key="params"] a').click()  # a second column
        wait_until(lambda: models()[0] == EVIL, 10, 0.1, "sort by parameters")  # 25M first
        # client-side filter
        driver.find_element(By.ID, "q").send_keys("resnet")
        wait_until(lambda: models() == ["ResNet"], 10, 0.1, "filtering")
        driver.find_element(By.ID, "q").clear()
        driver.get(svc.url + "/")
        driver.save_screenshot(str(art / "leaderboard-index.png"))
        driver.find_element(By.LINK_TEXT, EVIL).click()
        wait_until(lambda: "/entries/e1" in driver.current_url, 20, 0.1, "the entry page")
        assert driver.find_element(By.TAG_NAME, "h1").text == EVIL
        assert "LID K-sweep" in driver.page_source
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 - no script ran
        assert driver.execute_script("return document.querySelectorAll('script').length") == 0
        driver.save_screenshot(str(art / "leaderboard-entry.png"))
    assert (art / "leaderboard-entry.png").stat().st_size > 1000


def test_cli_errors_are_one_line(tmp_path, capsys):
    from brainlid.cli import main

    notzip = tmp_path / "x.zip"
    notzip.write_bytes(b"hi")
    cases = [
        (["leaderboard", "serve", "--db", "ftp://x"], "unsupported database URL 'ftp://x'"),
        (["leaderboard", "worker", "--db", "postgresql://nobody@127.0.0.1:1/x", "--exit-when-empty"], "cannot connect to"),
        (["submit", "send", str(notzip), "--server", "http://127.0.0.1:1", "--token", "t"], "cannot reach http://127.0.0.1:1"),
    ]
    for argv, msg in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("brainlid: error: ") and msg in err[0], err


def test_moved_board_names_forward_from_site():
    """The board's data and exports moved from site to board: the old import path warns and gives the same object."""
    from brainlid.leaderboard import board, site

    with pytest.warns(DeprecationWarning, match="import board_rows from brainlid.leaderboard.board"):
        assert site.board_rows is board.board_rows
