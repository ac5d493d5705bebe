"""Type aliases of the public API's arguments, for annotations only (the checks that
give a clear error for a bad value are in :mod:`meanfield.validation`)."""

from __future__ import annotations

from decimal import Decimal
from os import PathLike
from typing import TYPE_CHECKING, Sequence, Union

import mpmath

if TYPE_CHECKING:  # for type checkers: at run time the names stay strings (no import cycle)
    from .activations import Activation
    from .eoc import EoCSolution
    from .maps import Initialisation

__all__ = ["Real", "Reals", "ActivationLike", "InitialisationLike", "Context", "FilePath"]

#: A real number as the API takes it: a decimal string (kept exact), an int, a float, a
#: Decimal or an mpmath number.
Real = Union[str, int, float, Decimal, mpmath.mpf]
#: One real number, or a sequence (or numpy array) of them.
Reals = Union[Real, Sequence[Real]]
#: An activation: a built-in's name (``"crelu"``) or an :class:`~meanfield.activations.Activation`.
ActivationLike = Union[str, "Activation"]
#: An initialisation, or an EoC solution (which carries its own and its q*).
InitialisationLike = Union["Initialisation", "EoCSolution"]
#: An mpmath context: ``mpmath.mp`` or one of the caller's own (its precision is used).
Context = mpmath.ctx_mp.MPContext
#: A file name.
FilePath = Union[str, PathLike]
