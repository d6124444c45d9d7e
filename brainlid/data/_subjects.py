"""Subject labels shared by the loaders."""

from __future__ import annotations

import re

from ..errors import InputError

__all__ = ["bids_subject"]


def bids_subject(subject) -> str:
    """BIDS subject label ``sub-XX`` from ``1``, ``"1"``, ``"01"``, ``"sub01"`` or ``"sub-01"``.

    Raises
    ------
    InputError
        For anything else, or a number below 1.
    """
    if isinstance(subject, str):
        m = re.fullmatch(r"(?:sub-?)?0*(\d+)", subject.strip())
        if not m:
            raise InputError(f"subject must be a number or 'sub-XX', got {subject!r}")
        subject = int(m.group(1))
    if int(subject) < 1:
        raise InputError(f"subject must be >= 1, got {subject}")
    return f"sub-{int(subject):02d}"
