"""Core data types and dataset loaders.

* :class:`StimulusSet` — stimulus ids, metadata, a content digest and lazy images.
* :class:`BrainData` — responses in the canonical axis order with ids, units, ceilings, splits.
* :func:`match_ids` — the one join every pairing of data goes through.

Dataset loaders live in submodules (``brainlid.data.nsd``, ``brainlid.data.algonauts``, ...),
imported on use.
"""

from .brain import BrainData
from .ids import as_ids, match_ids
from .stimuli import ArrayReader, FileReader, HDF5Reader, ImageReader, StimulusSet

__all__ = ["BrainData", "StimulusSet", "ImageReader", "ArrayReader", "FileReader", "HDF5Reader", "as_ids", "match_ids"]
