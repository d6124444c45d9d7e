"""Core data types and dataset loaders.

* :class:`StimulusSet` — stimulus ids, metadata, a content digest and lazy images.
* :class:`BrainData` — responses in the canonical axis order with ids, units, ceilings, splits.
* :func:`match_ids` — the one join every pairing of data goes through; :func:`ids_digest` — the
  one hash of a stimulus-id sequence.

Dataset loaders live in submodules (``brainlid.data.nsd``, ``brainlid.data.algonauts``, ...),
imported on use. The names above are imported on first access too (PEP 562), so light modules
such as :mod:`brainlid.data.condensed` or :mod:`brainlid.data.reliability` do not pull pandas
into the CLI's start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_face

if TYPE_CHECKING:
    from .brain import BrainData
    from .ids import as_ids, ids_digest, match_ids
    from .stimuli import ArrayReader, FileReader, HDF5Reader, ImageReader, StimulusSet

#: public name -> submodule that defines it
_FACE = {
    "BrainData": ".brain",
    "StimulusSet": ".stimuli",
    "ImageReader": ".stimuli",
    "ArrayReader": ".stimuli",
    "FileReader": ".stimuli",
    "HDF5Reader": ".stimuli",
    "as_ids": ".ids",
    "match_ids": ".ids",
    "ids_digest": ".ids",
}

__all__ = list(_FACE)
__getattr__, __dir__ = lazy_face(__name__, _FACE)
