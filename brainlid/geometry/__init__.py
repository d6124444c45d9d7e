"""Geometry of representations: exact kNN, local and global intrinsic dimension."""

from .knn import KNN, knn

__all__ = ["KNN", "knn"]
