"""Figures (matplotlib, drawn off-screen; every figure saved as PNG and SVG).

* :func:`scatter_fit` — a measure against an alignment target across models, with the OLS fit
  and its 95 % bootstrap band (models resampled);
* :func:`family_scatter` — the same scatter coloured by model family, with one least-squares line
  per family (the within-family relation) and the pooled line (the within/between decomposition);
* :func:`r_vs_k` — r of LID with a target as a function of K (local → global), with the
  max-over-K corrected p-values, and the global measures as horizontal reference lines;
* :func:`measures_forest` — every dimension measure's r with each target, with its interval;
* :func:`layer_profiles` — LID and brain score across the layers of each model;
* :func:`score_vs_time` — EEG/MEG score curves with their CI and the noise-ceiling band;
* :func:`brain_map` — per-voxel scores on a glass brain (volumes) or on the fsaverage surface;
* :func:`analysis_figures` — every figure of an across-model analysis, written to a folder;
* :func:`draw_intervals` — intervals drawn as ``[ci_low, ci_high]`` themselves (a stimulus-bootstrap
  *basic* interval need not contain the point estimate, so never as value ± error).

One module per figure family: :mod:`.scatter` (across-model figures), :mod:`.profiles` (layers,
time), :mod:`.brain` (brain maps), :mod:`.figures` (an analysis's folder of figures), on top of
:mod:`.style` (figure, saving, intervals, model styles, box placement) and :mod:`.words` (labels
and number formats, no matplotlib). Every public name is importable from ``brainlid.plotting``.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never through
``pyplot``'s global state, so importing brainlid does not change the user's backend.
"""

from .brain import NIFTI_MNI_CODE, brain_map, volume_space
from .figures import analysis_figures
from .profiles import layer_profiles, score_vs_time
from .scatter import family_scatter, measures_forest, r_vs_k, scatter_fit
from .style import draw_intervals, model_styles, place_free, save_figure
from .words import (MEASURE_WORDS, METRIC_WORDS, benchmark_metric, describe_measure, describe_target, format_number,
                    format_p, metric_words)

__all__ = ["scatter_fit", "family_scatter", "r_vs_k", "measures_forest", "layer_profiles", "score_vs_time",
           "brain_map", "volume_space", "NIFTI_MNI_CODE", "analysis_figures", "save_figure", "draw_intervals",
           "model_styles", "place_free", "METRIC_WORDS", "MEASURE_WORDS", "metric_words", "describe_measure",
           "describe_target", "format_p", "format_number", "benchmark_metric"]
