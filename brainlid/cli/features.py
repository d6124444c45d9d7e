"""``brainlid extract``, ``brainlid layers``, ``brainlid cache list`` / ``brainlid cache clear``.

Every command imports :mod:`brainlid.features` (numpy, pandas; torch when a model is built) in
its body, so ``brainlid --help`` stays fast.
"""

from __future__ import annotations

import json
import os

import click

from ..errors import InputError
from ._common import check_output_dir


def _parse_pooling_option(values: tuple[str, ...]):
    """``--pooling avg`` (all layers) or repeated ``--pooling LAYER=MODE``."""
    if not values:
        return "avg"
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    out = {}
    for v in values:
        if "=" not in v:
            out["default"] = v
        else:
            k, mode = v.split("=", 1)
            out[k.strip()] = mode.strip()
    return out


def _parse_input_size(text: str | None):
    if text is None:
        return None
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        raise InputError(f"--input-size must be C,H,W such as 3,224,224; got {text!r}")
    return parts


@click.command("extract")
@click.option("--model", "-m", "model", required=True, help="Model spec, e.g. torchvision:resnet18, module:net.py:Net@w.pt, hf:facebook/dinov2-small.")
@click.option("--stimuli", "-s", required=True, help="Image folder, FILE.h5:KEY or a .npy array (n, H, W[, C]). A `brainlid benchmarks stimuli` "
                   "export keeps the benchmark's stimulus ids.")
@click.option("--layers", "-l", multiple=True, required=True, help="Layer names, globs (blocks.*) or re:REGEX; repeat or comma-separate.")
@click.option("--pooling", "-p", multiple=True, help="avg|max|none|cls|tokens|adaptive:S for all layers, or LAYER=MODE (repeatable). Default avg.")
@click.option("--reduce", default=None, help="srp:K or pca:K[:seed] dimensionality reduction.")
@click.option("--fit-ids", type=click.Path(dir_okay=False), default=None, help="PCA only: a text file of stimulus ids (one per line) to fit the PCA on.")
@click.option("--batch-size", "-b", default=64, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True, help="Compute precision.")
@click.option("--storage-dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--workers", "num_workers", default=0, show_default=True, type=int, help="DataLoader worker processes.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False), default=None, help="Write <layer>.npy, stimulus_ids.npy and manifest.json here.")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Feature cache folder (default $BRAINLID_HOME/cache/features).")
@click.option("--no-cache", is_flag=True, help="Compute in memory without the cache.")
@click.option("--max-disk", default=None, help="Disk budget for new cache entries, e.g. 20GB (default: free space minus 1 GiB).")
@click.option("--allow-download", is_flag=True, help="Let model adapters download missing weights.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def extract(model, stimuli, layers, pooling, reduce, fit_ids, batch_size, device, dtype, storage_dtype, num_workers, out, cache_dir, no_cache, max_disk, allow_download, quiet):
    """Extract pooled layer features of MODEL for a stimulus set (cached; resumable after a crash)."""
    from ..features import Reduction, extract as extract_features  # start-up: numpy/pandas; torch for the model

    check_output_dir(out, "--out")  # before any work
    if not no_cache:
        check_output_dir(cache_dir, "--cache-dir")
    layer_list = [t.strip() for v in layers for t in v.split(",") if t.strip()]
    if fit_ids is not None:
        red = Reduction.parse(reduce)
        if red is None or red.method != "pca":
            raise InputError("--fit-ids needs --reduce pca:K")
        with open(fit_ids, encoding="utf-8") as fh:
            ids = [line.strip() for line in fh if line.strip()]
        if not ids:
            raise InputError(f"{fit_ids} lists no stimulus ids")
        ids = [int(i) for i in ids] if all(i.lstrip("-").isdigit() for i in ids) else ids
        reduce = Reduction("pca", red.n_components, red.seed, fit_ids=ids, fit_name=os.path.basename(fit_ids))
    cache = False if no_cache else (cache_dir if cache_dir else True)
    feats = extract_features(
        model, stimuli, layer_list, pooling=_parse_pooling_option(pooling), batch_size=batch_size, device=device, dtype=dtype,
        reduce=reduce, cache=cache, storage_dtype=storage_dtype, num_workers=num_workers, progress=not quiet,
        max_disk=max_disk, allow_download=allow_download or None,
    )
    rows = [(name, f"{a.shape[0]} x {a.shape[1]}", str(a.dtype), (feats.provenance.get("cache_keys") or {}).get(name) or "-") for name, a in feats.items()]
    if out:
        path = feats.save(out)
        click.echo(f"wrote {len(feats)} layer(s) to {path}")
    for name, shape, dt, key in rows:
        click.echo(f"{name}\t{shape}\t{dt}\t{key[:16]}")


@click.command("layers")
@click.argument("model")
@click.option("--input-size", default=None, help="C,H,W of the dummy input (default: the model's, else 3,224,224).")
@click.option("--all", "show_all", is_flag=True, help="Also list modules not called in the forward pass.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def layers(model, input_size, show_all, as_json):
    """List the layers of MODEL (a spec) with their output shapes for one dummy input."""
    from ..features import list_layers  # start-up: numpy/pandas; torch when the model is built

    infos = list_layers(model, _parse_input_size(input_size))
    if not show_all:
        infos = [i for i in infos if i.output_shape is not None]
    if as_json:
        click.echo(json.dumps([{"name": i.name, "type": i.type, "output_shape": list(i.output_shape) if i.output_shape else None, "params": i.n_params, "calls": i.calls} for i in infos], indent=1))
        return
    from rich.console import Console  # start-up: rich only when the table is printed
    from rich.table import Table  # start-up: rich

    table = Table(title=f"layers of {model}")
    for col in ("name", "type", "output shape", "params"):
        table.add_column(col, justify="right" if col == "params" else "left")
    for i in infos:
        table.add_row(i.name, i.type, "×".join(map(str, i.output_shape)) if i.output_shape else "-", f"{i.n_params:,}")
    Console(width=120).print(table)


@click.group("cache")
def cache() -> None:
    """Inspect and clear the feature cache."""


@cache.command("list")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--json", "as_json", is_flag=True)
def cache_list(cache_dir, as_json):
    """List cache entries: key, model, layer, n, size, date."""
    from ..features import FeatureCache, fmt_size  # start-up: numpy/pandas

    entries = FeatureCache(cache_dir).entries()
    if as_json:
        click.echo(json.dumps([{"key": e.key, "model": e.model, "layer": e.layer, "n": e.n, "n_features": e.n_features, "dtype": e.dtype, "bytes": e.size, "created": e.created, "complete": e.complete} for e in entries], indent=1))
        return
    from rich.console import Console  # start-up: rich only when the table is printed
    from rich.table import Table  # start-up: rich

    table = Table(title=f"feature cache ({len(entries)} entries, {fmt_size(sum(e.size for e in entries))})")
    for col in ("key", "model", "layer", "n", "features", "size", "date", "state"):
        table.add_column(col)
    for e in entries:
        table.add_row(e.key[:12], e.model, e.layer, str(e.n), str(e.n_features), fmt_size(e.size), e.created[:19], "ok" if e.complete else "partial")
    Console(width=160).print(table)


@cache.command("clear")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None)
@click.option("--older-than", default=None, help="Only entries last written longer ago than this, e.g. 30d, 12h.")
@click.option("--model", default=None, help="Only entries whose model id contains this text.")
def cache_clear(cache_dir, older_than, model):
    """Delete cache entries (all, or filtered); entries being written are skipped."""
    from ..features import FeatureCache, fmt_size, parse_age  # start-up: numpy/pandas

    if older_than is not None:
        parse_age(older_than)  # validate before touching anything
    removed = FeatureCache(cache_dir).clear(older_than=older_than, model=model)
    click.echo(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({fmt_size(sum(e.size for e in removed))})")
