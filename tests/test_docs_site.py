"""The documentation site: it builds offline with warnings as errors (executing every tutorial), a broken
cross-reference fails the build, and the built index and a tutorial page render in headless Chromium
with no console error, every image loaded, and the tutorial's executed output on the page.

This is the build ``make docs`` runs (``sphinx -W``), so CI fails on a broken reference or a tutorial
that stops running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_nb")

from support import REPO  # noqa: E402  (after the skips)

DOCS = REPO / "docs"


def _sphinx(src: Path, out: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q", str(src), str(out)],
                          capture_output=True, text=True, env=env, timeout=3000)


def _env(home: Path, figures: Path, execute: str = "force") -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("BRAINLID_DATA", "BRAINLID_TUTORIAL_OUT")}
    env.update(BRAINLID_HOME=str(home), BRAINLID_TUTORIAL_OUT=str(figures), BRAINLID_DOCS_EXECUTE=execute, CI="true")
    return env


@pytest.fixture(scope="module")
def site(demo_home, tmp_path_factory):
    """The site built as ``make docs`` builds it (tutorials executed on the session's demo zoo)."""
    home, _, _ = demo_home
    tmp = tmp_path_factory.mktemp("docs")
    out = tmp / "html"
    res = _sphinx(DOCS, out, _env(home, tmp / "figures"))
    assert res.returncode == 0, f"sphinx -W failed:\n{res.stdout[-3000:]}\n{res.stderr[-6000:]}"
    return out


def test_every_page_built_and_tutorials_executed(site):
    for page in ("index", "install", "score_columns", "architecture", "api/geometry", "api/scoring",
                 "api/alignment", "guide/concepts", "guide/scoring", "tutorials/index"):
        assert (site / f"{page}.html").is_file(), page
    for p in sorted((REPO / "tutorials").glob("[0-9][0-9]_*.py")):
        html = (site / "tutorials" / f"{p.stem}.html").read_text()
        if p.stem != "07_real_brains":  # (executed only where the small real datasets are; else shown as code)
            assert "figures -&gt;" in html, f"{p.stem}: no executed output on the page"
    quick = (site / "tutorials" / "01_quick_start.html").read_text()
    assert "DATA: SYNTHETIC" in quick and re.search(r"<img[^>]+src=\"[^\"]+\.png\"", quick)
    from brainlid import geometry

    guide = (site / "guide" / "geometry.html").read_text()  # the registry table is generated, never typed
    for key in [*geometry.ESTIMATORS, *geometry.AGGREGATES, *geometry.NORMS, *geometry.GLOBAL_MEASURES]:
        assert f"<code class=\"docutils literal notranslate\"><span class=\"pre\">{key}</span></code>" in guide, key
    api = (site / "api" / "geometry.html").read_text()
    assert 'id="brainlid.geometry.lid"' in api and "Parameters" in api  # numpydoc sections rendered


def test_a_broken_cross_reference_fails_the_build(tmp_path, demo_home):
    """The configuration keeps Sphinx's reference warnings (so ``-W`` turns a broken link into a failure)."""
    home, _, _ = demo_home
    shutil.copytree(DOCS, tmp_path / "docs", symlinks=True, ignore=shutil.ignore_patterns("_build"))
    shutil.copytree(REPO / "tutorials", tmp_path / "tutorials", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "docs" / "guide" / "concepts.md").write_text(
        (DOCS / "guide" / "concepts.md").read_text() + "\nSee {doc}`no_such_page` and {func}`brainlid.no_such_function`.\n")
    res = _sphinx(tmp_path / "docs", tmp_path / "html", _env(home, tmp_path / "figures", execute="off"))
    assert res.returncode != 0
    assert "no_such_page" in res.stderr


def test_pages_render_in_a_browser(site, headless_chrome):
    driver = headless_chrome()
    for page, text in (("index.html", "Score AI models against human brain data"),
                       ("tutorials/01_quick_start.html", "DATA: SYNTHETIC")):
        driver.get((site / page).as_uri())
        body = driver.execute_script("return document.body.innerText")
        assert text in body, page
        assert "brainlid" in driver.title
        imgs = driver.execute_script("return [...document.images].map(i => [i.src, i.complete && i.naturalWidth > 0])")
        assert imgs and all(ok for _, ok in imgs), (page, imgs)
        severe = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not severe, (page, severe)
