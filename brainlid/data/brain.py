"""Brain responses paired with stimulus ids: :class:`BrainData`.

Axis order is canonical everywhere in brainlid:

* ``(stimulus, unit)`` — averaged responses (fMRI voxels/vertices);
* ``(stimulus, unit, time)`` — averaged, time-resolved (EEG/MEG channels × samples);
* ``(stimulus, rep, unit[, time])`` — repetitions kept; ragged repetition counts are
  NaN-padded and counted in ``n_reps``.

A ``unit`` is a voxel, vertex, channel or neuron; ``units`` is a pandas DataFrame
with one row per unit (coordinates, hemisphere, ROI membership, ...). ROI
membership is stored as boolean columns named ``roi:<NAME>``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from .._atomic import atomic_path
from ..errors import FileFormatError, InputError
from .ids import as_ids, ids_in, positions_of

__all__ = ["BrainData"]

_FORMAT = "brainlid-braindata"
_FORMAT_VERSION = 1


def _as_selection(sel, n: int, what: str) -> np.ndarray:
    """Turn a boolean mask, integer positions or a slice into int64 positions."""
    if isinstance(sel, slice):
        return np.arange(n)[sel]
    arr = np.asarray(sel)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InputError(f"boolean {what} mask has shape {arr.shape}, expected ({n},)")
        return np.nonzero(arr)[0]
    if arr.dtype.kind not in "iu":
        raise InputError(f"{what} selection must be a boolean mask, integer positions or a slice")
    arr = arr.astype(np.int64).ravel()
    if arr.size and (arr.min() < -n or arr.max() >= n):
        raise InputError(f"{what} positions out of range for {n} {what}s")
    return arr % n if arr.size else arr


@dataclass
class BrainData:
    """Brain responses to stimuli, in brainlid's canonical axis order.

    Attributes
    ----------
    responses : ndarray, float32
        ``(stimulus, unit)``, ``(stimulus, unit, time)`` or, with ``has_reps``,
        ``(stimulus, rep, unit[, time])``; NaN pads missing repetitions.
    stimulus_ids : ndarray of shape (n_stimuli,)
        Unique ids (int64 or str), one per row of ``responses``.
    units : pandas.DataFrame
        One row per unit; ROI membership as boolean ``roi:<NAME>`` columns.
    times : ndarray of shape (n_times,) or None
        Time of each sample in seconds (time-resolved data only).
    noise_ceiling : ndarray of shape (n_units,) or (n_units, n_times) or None
        Fraction of explainable variance in [0, 1] (METHODS §6), for the responses as stored
        (averaged over ``n_reps``).
    n_reps : ndarray of shape (n_stimuli,) or None
        Number of repetitions behind each stimulus (kept or averaged).
    splits : dict of str to ndarray
        Named stimulus-id subsets, e.g. ``{"train": ..., "test": ...}``.
    subject, dataset, space : str
        Provenance: ``"subj01"``, ``"nsd"``, ``"func1pt8mm"``.
    has_reps : bool
        Whether axis 1 holds repetitions.
    meta : dict
        Extra JSON-serialisable provenance (loader options, file versions). ``meta["data_source"]``
        says where the data came from — ``"real"`` or ``"synthetic"``, set by the dataset loaders
        from the copy they read (:mod:`brainlid.data.provenance`); data built without it (e.g.
        :meth:`from_arrays`) count as ``"unknown"``. The scoring runners copy it into every row.
    """

    responses: np.ndarray
    stimulus_ids: np.ndarray
    units: pd.DataFrame | None = None
    times: np.ndarray | None = None
    noise_ceiling: np.ndarray | None = None
    n_reps: np.ndarray | None = None
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    subject: str = ""
    dataset: str = "custom"
    space: str = ""
    has_reps: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        r = np.asarray(self.responses)
        if r.dtype.kind not in "fiu":
            raise InputError(f"responses must be numeric, got dtype {r.dtype}")
        if r.dtype != np.float32:
            r = r.astype(np.float32)
        self.responses = r
        want_ndim = 2 + int(self.has_reps) + int(self.times is not None)
        if r.ndim != want_ndim:
            axes = "(stimulus" + (", rep" if self.has_reps else "") + ", unit" + (", time" if self.times is not None else "") + ")"
            raise InputError(f"responses have shape {r.shape}; expected {want_ndim} axes {axes}")
        self.stimulus_ids = as_ids(self.stimulus_ids)
        if self.stimulus_ids.size != r.shape[0]:
            raise InputError(f"{self.stimulus_ids.size} stimulus ids for {r.shape[0]} response rows")
        n_units = self.n_units
        if self.units is None:
            self.units = pd.DataFrame({"unit": np.arange(n_units)})
        if not isinstance(self.units, pd.DataFrame) or len(self.units) != n_units:
            raise InputError(f"units must be a DataFrame with {n_units} rows, got {getattr(self.units, 'shape', type(self.units))}")
        self.units = self.units.reset_index(drop=True)
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=np.float64)
            if self.times.shape != (r.shape[-1],):
                raise InputError(f"times has shape {self.times.shape}, expected ({r.shape[-1]},)")
        if self.noise_ceiling is not None:
            nc = np.asarray(self.noise_ceiling, dtype=np.float32)
            ok_shapes = [(n_units,)] + ([(n_units, self.n_times)] if self.times is not None else [])
            if nc.shape not in ok_shapes:
                raise InputError(f"noise_ceiling has shape {nc.shape}, expected one of {ok_shapes}")
            finite = nc[np.isfinite(nc)]
            if finite.size and (finite.min() < -1e-6 or finite.max() > 1 + 1e-6):
                raise InputError("noise_ceiling must be a fraction in [0, 1] (divide percentages by 100)")
            self.noise_ceiling = nc
        if self.n_reps is not None:
            self.n_reps = np.asarray(self.n_reps, dtype=np.int64)
            if self.n_reps.shape != (r.shape[0],):
                raise InputError(f"n_reps has shape {self.n_reps.shape}, expected ({r.shape[0]},)")
        splits = {}
        for name, ids in (self.splits or {}).items():
            ids = as_ids(ids, f"split {name!r}")
            missing = ids[~ids_in(ids, self.stimulus_ids)] if ids.dtype.kind == self.stimulus_ids.dtype.kind else ids
            if missing.size:
                raise InputError(f"split {name!r} names {missing.size} id(s) not in stimulus_ids, e.g. {list(missing[:5])}")
            splits[str(name)] = ids
        self.splits = splits
        self.subject, self.dataset, self.space = str(self.subject), str(self.dataset), str(self.space)

    # shape ----------------------------------------------------------------------------------------
    @property
    def unit_axis(self) -> int:
        return 2 if self.has_reps else 1

    @property
    def n_stimuli(self) -> int:
        return int(self.responses.shape[0])

    @property
    def n_units(self) -> int:
        return int(self.responses.shape[self.unit_axis])

    @property
    def n_times(self) -> int | None:
        return None if self.times is None else int(self.responses.shape[-1])

    @property
    def rois(self) -> list[str]:
        """ROI names available as ``roi:<NAME>`` unit columns."""
        return [c[4:] for c in self.units.columns if isinstance(c, str) and c.startswith("roi:")]

    # construction ---------------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        responses,
        stimulus_ids,
        *,
        units=None,
        times=None,
        noise_ceiling=None,
        n_reps=None,
        splits=None,
        subject: str = "sub-01",
        dataset: str = "custom",
        space: str = "",
        has_reps: bool = False,
        meta: dict | None = None,
    ) -> "BrainData":
        """Build BrainData from a lab's own arrays (validated like any loader's output).

        ``responses`` in the canonical order; with ``has_reps=True`` and no ``n_reps``, the
        repetitions are counted from the non-NaN entries.
        """
        r = np.asarray(responses, dtype=np.float32)
        if has_reps and n_reps is None and r.ndim >= 3:
            other = tuple(range(2, r.ndim))
            n_reps = np.sum(~np.all(np.isnan(r), axis=other), axis=1)
        units = units if units is None or isinstance(units, pd.DataFrame) else pd.DataFrame({"unit": np.asarray(units)})
        return cls(r, stimulus_ids, units, times, noise_ceiling, n_reps, dict(splits or {}), subject, dataset, space, has_reps, dict(meta or {}))

    # selection ------------------------------------------------------------------------------------
    def select(self, *, units=None, stimuli=None, time=None, roi: str | list[str] | None = None) -> "BrainData":
        """A new BrainData restricted along any axis.

        Parameters
        ----------
        units : bool mask, int positions or slice, optional
            Units to keep.
        stimuli : array-like of ids, optional
            Stimulus ids to keep, in that order (every id must exist).
        time : (tmin, tmax) in seconds, or bool mask / int positions, optional
            Time samples to keep (inclusive window).
        roi : str or list of str, optional
            Keep units in any of these ROIs (``roi:<NAME>`` columns).
        """
        out = self
        if roi is not None:
            names = [roi] if isinstance(roi, str) else list(roi)
            unknown = [n for n in names if f"roi:{n}" not in self.units.columns]
            if unknown:
                raise InputError(f"unknown ROI {unknown[0]!r}; available: {', '.join(self.rois) or 'none'}")
            mask = np.zeros(self.n_units, dtype=bool)
            for n in names:
                mask |= self.units[f"roi:{n}"].to_numpy(dtype=bool)
            out = out._take_units(np.nonzero(mask)[0])
        if units is not None:
            out = out._take_units(_as_selection(units, out.n_units, "unit"))
        if stimuli is not None:
            want = as_ids(stimuli, "stimuli")
            pos = positions_of(out.stimulus_ids, want, where="the data", names=(f"{out.dataset} {out.subject}", "selection"))
            out = out._take_stimuli(pos)
        if time is not None:
            if out.times is None:
                raise InputError("time selection on data without a time axis")
            if isinstance(time, tuple) and len(time) == 2 and not isinstance(time[0], (bool, np.bool_)):
                mask = (out.times >= time[0] - 1e-12) & (out.times <= time[1] + 1e-12)
                pos = np.nonzero(mask)[0]
            else:
                pos = _as_selection(time, out.n_times, "time")
            if pos.size == 0:
                raise InputError(f"time selection {time} keeps no samples (times {out.times[0]:.3f}…{out.times[-1]:.3f} s)")
            nc = out.noise_ceiling
            if nc is not None and nc.ndim == 2:
                nc = nc[:, pos]
            out = replace(out, responses=out.responses[..., pos], times=out.times[pos], noise_ceiling=nc)
        return out

    def _take_units(self, pos: np.ndarray) -> "BrainData":
        r = np.take(self.responses, pos, axis=self.unit_axis)
        nc = None if self.noise_ceiling is None else self.noise_ceiling[pos]
        return replace(self, responses=r, units=self.units.iloc[pos].reset_index(drop=True), noise_ceiling=nc)

    def _take_stimuli(self, pos: np.ndarray) -> "BrainData":
        ids = self.stimulus_ids[pos]
        splits = {k: v[ids_in(v, ids)] for k, v in self.splits.items()}
        splits = {k: v for k, v in splits.items() if v.size}  # a split emptied by the selection is dropped
        n_reps = None if self.n_reps is None else self.n_reps[pos]
        return replace(self, responses=self.responses[pos], stimulus_ids=ids, n_reps=n_reps, splits=splits)

    def split(self, name: str) -> "BrainData":
        """The stimuli of split ``name``."""
        if name not in self.splits:
            raise InputError(f"unknown split {name!r}; available: {', '.join(self.splits) or 'none'}")
        return self.select(stimuli=self.splits[name])

    def average_reps(self) -> "BrainData":
        """Average over the repetition axis (NaN-padded repetitions ignored)."""
        if not self.has_reps:
            return self
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            avg = np.nanmean(self.responses, axis=1).astype(np.float32)
        return replace(self, responses=avg, has_reps=False)

    # persistence ----------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write to HDF5 (no pickle), atomically. Read back with :meth:`load`."""
        path = Path(path)
        str_dt = h5py.string_dtype("utf-8")
        with atomic_path(path, suffix=".h5") as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["format"] = _FORMAT
                f.attrs["format_version"] = _FORMAT_VERSION
                for key in ("subject", "dataset", "space"):
                    f.attrs[key] = getattr(self, key)
                f.attrs["has_reps"] = bool(self.has_reps)
                f.attrs["meta"] = json.dumps(self.meta, default=str)
                chunks = (min(self.n_stimuli, 256),) + self.responses.shape[1:] if self.responses.size else None
                f.create_dataset("responses", data=self.responses, chunks=chunks)
                _write_ids(f, "stimulus_ids", self.stimulus_ids, str_dt)
                for key in ("times", "noise_ceiling", "n_reps"):
                    val = getattr(self, key)
                    if val is not None:
                        f.create_dataset(key, data=val)
                g = f.create_group("units")
                g.attrs["columns"] = json.dumps([str(c) for c in self.units.columns])
                for i, col in enumerate(self.units.columns):
                    values = self.units[col].to_numpy()
                    if values.dtype.kind in "biuf":
                        g.create_dataset(f"c{i}", data=values)
                    else:
                        g.create_dataset(f"c{i}", data=np.asarray(values, dtype=str).astype(object), dtype=str_dt)
                s = f.create_group("splits")
                for name, ids in self.splits.items():
                    _write_ids(s, name, ids, str_dt)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BrainData":
        """Read a file written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"BrainData file not found: {path}")
        try:
            with h5py.File(path, "r") as f:
                if f.attrs.get("format") != _FORMAT:
                    raise FileFormatError(f"{path} is not a brainlid BrainData file")
                if int(f.attrs["format_version"]) > _FORMAT_VERSION:
                    raise FileFormatError(f"{path} was written by a newer brainlid (format {f.attrs['format_version']})")
                cols = json.loads(f["units"].attrs["columns"])
                units = pd.DataFrame({c: _read_col(f["units"][f"c{i}"]) for i, c in enumerate(cols)})
                return cls(
                    responses=f["responses"][()],
                    stimulus_ids=_read_col(f["stimulus_ids"]),
                    units=units,
                    times=f["times"][()] if "times" in f else None,
                    noise_ceiling=f["noise_ceiling"][()] if "noise_ceiling" in f else None,
                    n_reps=f["n_reps"][()] if "n_reps" in f else None,
                    splits={k: _read_col(v) for k, v in f["splits"].items()},
                    subject=str(f.attrs["subject"]),
                    dataset=str(f.attrs["dataset"]),
                    space=str(f.attrs["space"]),
                    has_reps=bool(f.attrs["has_reps"]),
                    meta=json.loads(f.attrs["meta"]),
                )
        except (OSError, KeyError) as exc:
            raise FileFormatError(f"cannot read BrainData from {path}: {exc}") from exc

    def __repr__(self) -> str:
        axes = "stimulus" + (", rep" if self.has_reps else "") + ", unit" + (", time" if self.times is not None else "")
        return (
            f"BrainData(dataset={self.dataset!r}, subject={self.subject!r}, space={self.space!r}, "
            f"responses{self.responses.shape} ({axes}), splits={list(self.splits)}, "
            f"noise_ceiling={'yes' if self.noise_ceiling is not None else 'no'})"
        )


def _write_ids(group, name, ids, str_dt):
    if ids.dtype.kind == "U":
        group.create_dataset(name, data=ids.astype(object), dtype=str_dt)
    else:
        group.create_dataset(name, data=ids)


def _read_col(ds):
    values = ds[()]
    if ds.dtype.kind == "O" or h5_is_str(ds):
        return np.asarray([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values])
    return values


def h5_is_str(ds) -> bool:
    return h5py.check_string_dtype(ds.dtype) is not None
