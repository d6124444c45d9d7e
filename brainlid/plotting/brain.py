"""Brain maps: per-unit scores on the MNI glass brain, in a subject's own voxel grid, or on fsaverage5."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.colors import TwoSlopeNorm

from .._docs import fill_doc
from ..errors import InputError, require
from .style import _figure, save_figure

NIFTI_MNI_CODE = 4


def volume_space(img=None, space: str | None = None) -> str:
    """``"mni"`` or ``"native"``: whether a volume may be drawn on a standard (MNI) brain.

    Parameters
    ----------
    img : nibabel image or None
        A NIfTI image: MNI only when its sform or qform code says MNI-152 (:data:`NIFTI_MNI_CODE`).
    space : str or None
        A dataset's declared space (e.g. ``BrainData.space``); decides when given: MNI when it
        names MNI (``"MNI152NLin2009cAsym"``, ``"mni"``), native otherwise (NSD's ``func1pt8mm``
        is the subject's own functional space).

    Returns
    -------
    str
        ``"mni"`` or ``"native"``; ``"native"`` without either argument: a volume is never put
        on a template it was not registered to.
    """
    if space is not None and str(space).strip():
        return "mni" if "mni" in str(space).lower() else "native"
    if img is not None and hasattr(img, "header"):
        h = img.header
        codes = {int(h.get_sform(coded=True)[1] or 0), int(h.get_qform(coded=True)[1] or 0)}
        return "mni" if NIFTI_MNI_CODE in codes else "native"
    return "native"


def _native_projections(fig, data: np.ndarray, affine: np.ndarray, title: str, threshold: float | None):
    """Maximum-|value| projections of a volume through its own voxel grid (three views, mm from the voxel size)."""
    vox = np.sqrt((np.asarray(affine, dtype=float)[:3, :3] ** 2).sum(axis=0))
    d = np.where(np.isfinite(data), data, 0.0)
    if threshold is not None:
        d = np.where(np.abs(d) >= threshold, d, 0.0)
    vmax = float(np.nanmax(np.abs(d))) or 1.0
    views = (("sagittal (along i)", 0, (1, 2)), ("coronal (along j)", 1, (0, 2)), ("axial (along k)", 2, (0, 1)))
    axes = fig.subplots(1, 3)
    im = None
    for ax, (name, along, (h, v)) in zip(axes, views):
        idx = np.expand_dims(np.abs(d).argmax(axis=along), along)
        proj = np.take_along_axis(d, idx, axis=along).squeeze(along)  # signed value of the largest |value|
        proj = np.where(proj == 0, np.nan, proj)
        im = ax.imshow(proj.T, origin="lower", cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -vmax, vmax),
                       extent=(0, proj.shape[0] * vox[h], 0, proj.shape[1] * vox[v]), interpolation="nearest")
        ax.set_title(name, fontsize=7.5)
        ax.set_xlabel(f"voxel axis {'ijk'[h]} (mm)", fontsize=7)
        ax.set_ylabel(f"voxel axis {'ijk'[v]} (mm)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_facecolor("#f2f2f2")
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    fig.suptitle((title + "\n" if title else "") + "subject-native space (not MNI): largest |value| along each "
                 "voxel axis, no template outline", fontsize=8)


@fill_doc
def brain_map(values, *, mask_img=None, coords=None, affine=None, shape=None, surface: str | None = None,
              title: str = "", stem=None, threshold: float | None = None, space: str | None = None):
    """Per-unit scores as a brain map.

    Volumes are drawn on nilearn's MNI glass brain only when the data are in MNI space
    (:func:`volume_space`: the declared ``space``, else the NIfTI header's sform/qform code); data
    in a subject's native space (NSD ``func1pt8mm``, or anything not declared MNI) are drawn as
    maximum projections through their own voxel grid, titled so. Surfaces are drawn with
    nilearn's ``plot_surf_stat_map`` on nilearn's bundled fsaverage5 mesh (no download).

    Parameters
    ----------
    values : array-like of shape (n_units,)
        One score per unit (voxel or vertex).
    mask_img : path-like or nibabel image or None
        A NIfTI whose non-zero voxels are the units, in C order of the array (how brainlid's NSD
        loader orders voxels).
    coords : array-like of shape (n_units, 3) or None
        Voxel indices of the units, with ``affine`` and ``shape`` (instead of ``mask_img``).
    affine : array-like of shape (4, 4) or None
        Voxel-to-world affine of ``coords``.
    shape : tuple of 3 int or None
        Volume shape of ``coords``.
    surface : {"fsaverage5"} or None
        Draw on a surface: ``values`` then has 2 × 10242 entries (left, then right hemisphere).
    title : str
        Figure title.
    %(stem)s
    threshold : float or None
        Values with smaller magnitude are not drawn (glass brain default: nilearn's ``"auto"``).
    space : str or None
        The data's declared space (see :func:`volume_space`).

    Returns
    -------
    pathlib.Path or nilearn display or matplotlib.figure.Figure
        The PNG path when ``stem`` is given (an SVG is written beside it), else the nilearn
        display object (glass brain) or the Figure.
    """
    nib = require("nibabel", "core")
    plotting = require("nilearn.plotting", "core", "brain maps")
    v = np.asarray(values, dtype=np.float32).ravel()
    if surface is None:
        header_img = None
        if mask_img is not None:
            mask_img = nib.load(mask_img) if isinstance(mask_img, (str, os.PathLike)) else mask_img
            mask = np.asarray(mask_img.dataobj) != 0
            if mask.sum() != v.size:
                raise InputError(f"mask has {int(mask.sum())} voxels but {v.size} values were given")
            data = np.zeros(mask.shape, dtype=np.float32)
            data[mask] = v
            img = nib.Nifti1Image(data, mask_img.affine)
            header_img = mask_img
        else:
            if coords is None or affine is None or shape is None:
                raise InputError("brain_map needs mask_img, or coords with affine and shape, or surface=")
            c = np.asarray(coords, dtype=int)
            if c.shape != (v.size, 3):
                raise InputError(f"coords must have shape ({v.size}, 3), got {c.shape}")
            data = np.zeros(tuple(shape), dtype=np.float32)
            data[c[:, 0], c[:, 1], c[:, 2]] = v
            img = nib.Nifti1Image(data, np.asarray(affine, dtype=float))
        if volume_space(header_img, space) == "mni":
            fig = _figure(7.0, 2.8, layout=None)
            display = plotting.plot_glass_brain(img, figure=fig, title=title or None, colorbar=True, plot_abs=False,
                                                threshold=threshold if threshold is not None else "auto",
                                                cmap="cold_hot")
        else:
            fig = _figure(8.0, 3.0)
            _native_projections(fig, data, img.affine, title, threshold)
            display = fig
    else:
        from nilearn import datasets  # heavy: nilearn's dataset fetchers, only for surfaces

        if surface != "fsaverage5":
            raise InputError(f"surface must be 'fsaverage5' (bundled with nilearn), got {surface!r}")
        fs = datasets.fetch_surf_fsaverage("fsaverage5")
        n_h = v.size // 2
        if v.size != 2 * 10242:
            raise InputError(f"fsaverage5 maps need 2 × 10242 values (left, right), got {v.size}")
        fig = _figure(7.0, 3.2, layout=None)
        axes = [fig.add_subplot(1, 2, i + 1, projection="3d") for i in range(2)]
        for ax, hemi, vals in zip(axes, ("left", "right"), (v[:n_h], v[n_h:])):
            plotting.plot_surf_stat_map(fs[f"infl_{hemi}"], vals, hemi=hemi, bg_map=fs[f"sulc_{hemi}"], axes=ax,
                                        figure=fig, colorbar=False, threshold=threshold, cmap="cold_hot")
        fig.suptitle(title, fontsize=9)
        display = fig
    if stem is not None:
        return save_figure(fig, stem)
    return display
