# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. Leaderboards — submit a model, and run a board for your lab
#
# A leaderboard makes scores comparable: everyone is scored by the same code, on the same
# benchmark version, split and noise ceiling. brainlid's board accepts **features, never code and
# never scores**. A submission is a *bundle*: a zip with one array per layer — the model's features
# for the benchmark's published stimulus set, in the published order — and a manifest (benchmark
# ids, stimulus ids, layer names, SHA-256 of every array, and metadata such as the parameter count).
# The service validates the bundle (no pickles, no path tricks, no zip bombs, no NaN, the exact
# stimulus ids in the exact order), scores it with the same `check_bundle` path you can run
# locally, and shows the result with its LID.
#
# This tutorial plays both roles on one machine:
#
# 1. **the lab** starts a board on 127.0.0.1 (a SQLite database, the service in a subprocess with
#    one in-process scoring worker) and issues a team token;
# 2. **a submitter** prepares bundles for two models, checks one locally, uploads them, waits for
#    the scores, and sees a malformed bundle rejected with a reason;
# 3. everyone reads the board (JSON API, CSV, a static HTML site); the lab stops the service.
#
# **Data.** The board scores on the demo's **synthetic** NSD-format subject unless `BRAINLID_DATA`
# holds a real NSD copy; the models are the demo's digit networks (on real data set
# `BRAINLID_TUTORIAL_MODELS` to two comma-separated specs and the layers are their top-level
# modules).

# %%
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import _common

OUT = _common.output_dir("tutorial05")
pd.set_option("display.width", 160)
root = _common.dataset_root("nsd", "an NSD-format subject (digits as images)")
SYNTHETIC = root is None
if SYNTHETIC:
    root = _common.synthetic_nsd()
    zoo = _common.demo_zoo().set_index("model")
    from brainlid.demo import zoo as zoo_module

    entries = {m: {"spec": zoo.loc[m, "spec"], "layers": zoo_module.layers_of(m), "parameters": int(zoo.loc[m, "params"]),
                   "training_data": f"sklearn digits, {int(zoo.loc[m, 'train_n'])} images"}
               for m in ("cnn_c16_d2", "mlp_w64_d2")}
else:
    specs = [s.strip() for s in os.environ.get("BRAINLID_TUTORIAL_MODELS", "torchvision:resnet18").split(",") if s.strip()]
    entries = {s: {"spec": s, "layers": None, "parameters": None, "training_data": ""} for s in specs[:2]}
BENCH = "nsd.subj01.nsdgeneral.encoding"

# %% [markdown]
# ## 1. The lab starts a board
# The database URL may be SQLite (one file; fine for a lab) or PostgreSQL (several services and
# workers on different machines). A team token is printed once; only its hash is stored. From a
# shell the same steps are
#
# ```bash
# brainlid leaderboard token --db sqlite:///board.sqlite --team my-lab
# brainlid leaderboard serve --db sqlite:///board.sqlite --port 8000 --data-root ~/brainlid_data/nsd
# ```

# %%
from brainlid.leaderboard import Database
from brainlid.leaderboard.queue import create_team

db_url = f"sqlite:///{OUT / 'board.sqlite'}"
token = create_team(Database(db_url), "my-lab")
print("team token:", token[:8] + "…")

with socket.socket() as s:  # a free port on the loopback interface
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
server = f"http://127.0.0.1:{port}"
log = open(OUT / "service.log", "wb")
service = subprocess.Popen([sys.executable, "-m", "brainlid", "leaderboard", "serve", "--db", db_url, "--host", "127.0.0.1",
                            "--port", str(port), "--data-root", str(root), "--workers", "1",
                            "--storage", str(OUT / "bundles")], stdout=log, stderr=subprocess.STDOUT)
atexit.register(service.terminate)  # never leave the service running, even if a later cell fails


def get_json(path):
    with urllib.request.urlopen(server + path, timeout=10) as r:
        return json.loads(r.read())


deadline = time.monotonic() + 120
while True:
    if service.poll() is not None:
        raise RuntimeError("the service exited:\n" + (OUT / "service.log").read_text()[-3000:])
    try:
        health = get_json("/api/health")
        print("health:", "ok" if health.get("ok") else "NOT ok", "— queue:",
              ", ".join(f"{n} {state}" for state, n in health.get("queue", {}).items()))
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.3)

# %% [markdown]
# ## 2. A submitter prepares, checks and sends bundles
# `prepare_bundle` extracts the model's features for the benchmark's published stimulus set (all
# stimuli of the subject; the service decides which are train and test) and writes the zip.
# `check_bundle` runs exactly what the service will run — validation and scoring — on your own
# copy of the data, so a bundle that passes locally is scored the same way on the board.

# %%
from brainlid.leaderboard import check_bundle, prepare_bundle

bundles = {}
for name, e in entries.items():
    bundles[name] = prepare_bundle(e["spec"], BENCH, OUT / f"{name}.zip", layers=e["layers"], root=root,
                                   metadata={"model_name": name, "parameters": e["parameters"],
                                             "training_data": e["training_data"],
                                             "description": "tutorial 5 submission"},
                                   extract_kwargs={"progress": False})
    print(f"{name}: {bundles[name].name}, {bundles[name].stat().st_size / 1024:.0f} KiB")

first = next(iter(bundles))
report = check_bundle(bundles[first], root=root)
print(f"local check of {first}: {report.status}")
print(pd.DataFrame(report.summary()).round(4).to_string(index=False))

# %% [markdown]
# Uploading is one HTTP POST with the token (`brainlid submit send BUNDLE --server URL --token T
# --wait` from a shell); the answer carries a submission id to poll.

# %%
from brainlid.leaderboard.client import poll, send_bundle

results = {}
for name, path in bundles.items():
    ans = send_bundle(path, server, token)
    print(f"{name}: submission {ans.get('id')} {ans['status']}")
    results[name] = poll(server, ans["id"], timeout=600, interval=0.5)
    reason = results[name].get("reason")
    print(f"  -> {results[name]['status']}" + (f": {reason}" if reason else ""))
    for r in results[name].get("scores", []):
        print(f"     {r['metric']:<12} layer {r['layer']:<9} {r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]")

online = {r["metric"]: r["value"] for r in results[first].get("scores", [])}
local = {r["metric"]: r["value"] for r in report.summary()}
print(f"{first}: board and local check agree: {all(abs(online[m] - local[m]) < 1e-9 for m in local)}")

# %% [markdown]
# ### A bundle the board refuses
# Features in a different row order than the published stimulus ids are the most common silent
# error in hand-made submissions (every score would be computed against the wrong images). The
# board rejects them with a reason instead of scoring garbage.

# %%
from brainlid.leaderboard import write_bundle
from brainlid.leaderboard.bundle import read_manifest

man = read_manifest(bundles[first])
ids = np.asarray(man["stimulus_ids"])
rng = np.random.default_rng(0)
fake = {"embed": rng.standard_normal((ids.size, 8)).astype(np.float32)}
bad = write_bundle(OUT / "shuffled_ids.zip", fake, ids[::-1], BENCH, {"model_name": "wrong order"})
ans = send_bundle(bad, server, token)
print(f"wrong-order bundle: {ans['status']} — {ans.get('reason', '')}")
ans = send_bundle(bundles[first], server, "blt_not-a-real-token")
print(f"bad token: {ans['status']} — {ans.get('reason', '')}")

# %% [markdown]
# ## 3. Reading the board
# `/api/leaderboard` (JSON), `/leaderboard.csv` and the HTML pages at `/` and `/entries/<id>`
# show one row per entry and benchmark: the selected layer's test score with its interval, the
# noise ceiling, the normalised score, and the layer's LID (MLE, K = 20 where measured).

#
# First the lab adds **reference rows**: baselines scored on the server's own data (here raw
# pixels; `brainlid leaderboard baselines --model SPEC` adds random-weights and shuffled twins of an
# architecture too), so every entry is read against what no model must fall below.

# %%
from brainlid.leaderboard.worker import add_baselines
from brainlid.plotting import draw_intervals

added = add_baselines(Database(db_url), None, [BENCH], root=root, which=["pixels"])
print(f"baseline entries added: {len(added)} ({', '.join(e[:8] + '…' for e in added)})")
board = pd.DataFrame(get_json("/api/leaderboard"))
cols = ["model", "kind", "benchmark", "layer", "metric", "value", "ci_low", "ci_high", "ceiling", "normalised", "lid",
        "parameters"]
print(board[[c for c in cols if c in board]].round(4).to_string(index=False))

fig, ax = plt.subplots(figsize=(6.5, 2.8))
b = board[board.benchmark == BENCH].sort_values("value")
ax.barh(np.arange(len(b)), b.value, tick_label=b.model, color=["C0" if k == "entry" else "0.6" for k in b.kind])
draw_intervals(ax, np.arange(len(b)), b.ci_low, b.ci_high, horizontal=True, cap=0.2)  # [ci_low, ci_high] itself
if b.ceiling.notna().any():
    ax.axvline(b.ceiling.mean(), color="k", ls="--", lw=1, label="noise ceiling")
    ax.legend(fontsize=7, loc="lower right")
ax.set_xlabel(f"{b.metric.iloc[0]} (test)")
ax.set_title(f"board: {BENCH}" + (" — SYNTHETIC subject" if SYNTHETIC else ""), fontsize=9)
fig.tight_layout()
_common.save(fig, OUT, "leaderboard_scores.png")

# %% [markdown]
# A static copy of the board (for a lab web page or GitHub Pages) needs no running service:
# `brainlid leaderboard build --db … --out site/` or `build_site`. Then the lab stops the
# service; queued jobs would stay in the database for the next start.

# %%
from brainlid.leaderboard.site import build_site

pages = build_site(Database(db_url), OUT / "site", title="my-lab board (tutorial)")
print(f"static site: {len(pages)} files under {OUT / 'site'}")
service.terminate()
service.wait(timeout=60)
log.close()
# terminate() sends SIGTERM: returncode -15 (or 0 after a graceful shutdown) is the expected stop
expected = service.returncode in (0, -signal.SIGTERM)
print("service stopped" + ("" if expected else f" unexpectedly (exit code {service.returncode}; see {OUT / 'service.log'})"))
