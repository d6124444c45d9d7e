"""Shared fixtures: the demo's model zoo is trained ONCE per test run, into a temporary $BRAINLID_HOME."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """A temporary brainlid home holding the trained demo zoo and the synthetic NSD copy.

    Returns ``(home, zoo_table, nsd_root)``. Tests that need ``$BRAINLID_HOME`` set it themselves
    (``monkeypatch.setenv("BRAINLID_HOME", str(home))``) so other tests are not affected.
    """
    from brainlid.demo import train_zoo, write_synthetic_nsd

    home = tmp_path_factory.mktemp("brainlid_home")
    zoo = train_zoo(home, log=lambda *a: None)
    root = write_synthetic_nsd(home / "demo" / "nsd-synthetic")
    return home, zoo, root


@pytest.fixture(scope="session")
def demo_run(demo_home):
    """The full demo, run once per session on the shared home (the zoo is reused, not retrained)."""
    from brainlid.demo import run_demo

    home, _, _ = demo_home
    return run_demo(home=home, log=lambda *a: None)


@pytest.fixture(scope="session")
def tiny_net_py(tmp_path_factory):
    """A small seeded torch network as a file, for ``module:<path>:Net`` specs (layers ``conv``, ``pool``, ``fc``).

    Input ``(n, 3, H, W)`` images; ``fc`` gives 10 outputs. Written once per run.
    """
    path = tmp_path_factory.mktemp("tiny-net") / "net.py"
    path.write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        torch.manual_seed(0)\n"
        "        self.conv = torch.nn.Conv2d(3, 8, 3)\n"
        "        self.pool = torch.nn.AdaptiveAvgPool2d(2)\n"
        "        self.fc = torch.nn.Linear(32, 10)\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.pool(torch.relu(self.conv(x))).flatten(1))\n")
    return path


@pytest.fixture(scope="session")
def leaderboard_nsd(tmp_path_factory):
    """A small NSD-format dataset (one 1.8 mm space) for the leaderboard tests, written once per run."""
    from brainlid.data.fixtures import write_nsd

    return write_nsd(tmp_path_factory.mktemp("leaderboard-nsd"), spaces=("func1pt8mm",))


@pytest.fixture(scope="session")
def board_data(leaderboard_nsd):
    """The leaderboard's benchmark data over :func:`leaderboard_nsd` (loaded once per run)."""
    from brainlid.leaderboard.scoring import BenchmarkData

    return BenchmarkData(leaderboard_nsd)


@pytest.fixture(scope="session")
def board_ids(board_data):
    """The published stimulus ids of ``nsd.subj01.EBA.encoding`` on :func:`leaderboard_nsd`."""
    return board_data.ids("nsd.subj01.EBA.encoding")


@pytest.fixture(scope="session")
def chromium():
    """The path of a Chromium binary for headless browser tests (driven through ``/usr/bin/chromedriver``).

    Skipped without Chromium or chromedriver.
    """
    path = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)
    if path is None or not os.path.exists("/usr/bin/chromedriver"):
        pytest.skip("chromium and /usr/bin/chromedriver are needed (Debian: apt-get install chromium chromium-driver)")
    return path


@pytest.fixture
def headless_chrome(chromium):
    """A factory of headless Chromium drivers: ``headless_chrome(width=1280, height=1000)`` → a selenium
    driver with the browser console log kept (``driver.get_log("browser")``); every driver is quit after
    the test."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def make(width: int = 1280, height: int = 1000, *extra_flags: str):
        opts = webdriver.ChromeOptions()
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={width},{height}",
                     "--disable-dev-shm-usage", *extra_flags):
            opts.add_argument(flag)
        opts.binary_location = chromium
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=opts)
        driver.set_page_load_timeout(60)
        drivers.append(driver)
        return driver

    yield make
    for d in drivers:
        d.quit()
