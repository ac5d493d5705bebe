"""Verification that users can run: the property checks of meanfield's own suite, its
hypothesis strategies and its independent references, public.

- :func:`verify` (``meanfield verify``): one activation through every property check;
- :mod:`meanfield.testing.strategies`: hypothesis strategies (activation parameters,
  initialisations, EoC configurations of the built-ins) for a project's own tests;
- :mod:`meanfield.testing.references` and :mod:`meanfield.testing.bivariate`: the maps and
  the kernel of the built-ins by quadrature, written from the activations' definitions
  (they import nothing from meanfield);
- :mod:`meanfield.testing.piecewise`: random piecewise-polynomial activations (a
  strategy) with their quadrature reference from the rational coefficients.

hypothesis is needed for :func:`verify` and the strategies only (``pip install
'meanfield[test]'``); it is imported when they are used.
"""

__all__ = ["verify", "VerifyReport", "PropertyResult", "PROPERTIES"]


def __getattr__(name):
    if name in __all__:  # hypothesis and the core only when verify is used
        import importlib
        return getattr(importlib.import_module(".checks", __name__), name)
    raise AttributeError(f"module 'meanfield.testing' has no attribute {name!r}")
