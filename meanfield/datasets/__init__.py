"""Data sets for the experiments: :mod:`meanfield.datasets.mnist`.

This package uses no part of the analytic core and is never imported by it.
"""

from . import mnist

__all__ = ["mnist"]
