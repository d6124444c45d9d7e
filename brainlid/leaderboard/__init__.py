"""The leaderboard: submissions of features scored on the server, a scoring service, a browsable board.

A submission is a model's features for a benchmark's published stimulus set (plus metadata),
never code and never scores; the service scores the features itself.

* :mod:`.schema` — the one schema of everything a submitter writes (manifest JSON, metadata,
  layer names, stimulus ids) and the display side (visible text, public reasons);
* :mod:`.bundle` — write and validate bundles (zip of ``.npy``/safetensors arrays + manifest);
  :mod:`.archive` reads their zip in bounded memory;
* :mod:`.scoring` — :func:`check_bundle` (validate + score: the code ``submit check``, the upload
  handler and the worker share) and :func:`prepare_bundle`;
* :mod:`.db` — one schema for SQLite (WAL) and PostgreSQL, with migrations (score and geometry
  columns from :mod:`brainlid.scoring.tables`);
* :mod:`.queue` — teams/tokens, submissions and the leased job queue;
* :mod:`.worker` — the scoring loop and the baseline reference rows;
* :mod:`.app` — the ASGI service (Starlette on uvicorn);
* :mod:`.board` — the board's rows from the database, CSV and JSON exports;
* :mod:`.site` — HTML pages shared by the live service and the static build.
"""

from .bundle import Bundle, BundleError, Limits, validate_bundle, write_bundle
from .db import Database
from .scoring import BenchmarkData, CheckReport, check_bundle, prepare_bundle, published_stimulus_ids

__all__ = ["Bundle", "BundleError", "Limits", "validate_bundle", "write_bundle", "Database", "BenchmarkData",
           "CheckReport", "check_bundle", "prepare_bundle", "published_stimulus_ids"]
