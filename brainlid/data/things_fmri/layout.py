"""Where the files of a THINGS-fMRI copy are: paths from the dataset card, missing files named."""

from __future__ import annotations

from pathlib import Path

from .._subjects import bids_subject
from ..cards import get_card

__all__ = ["FOLDER", "CARD"]


FOLDER = "things_fmri"


CARD = "things_fmri"


_sub = bids_subject


def _paths(root, sub: str) -> dict[str, Path]:
    card = get_card(CARD)
    r = card.root(root)
    n = int(sub[4:])
    return {
        "root": r,
        "table": card.file(r, "response_table", subject=n),
        "stimuli": card.file(r, "stimulus_metadata", subject=n),
        "voxels": card.file(r, "voxel_metadata", subject=n),
        "betas_vol": card.file(r, "betas_vol_dir", subject=n),
        "mask": card.file(r, "brainmask", subject=n),
    }


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise get_card(CARD).not_found(path, what)
    return path
