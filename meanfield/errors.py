"""Errors raised for bad input: each names the parameter and its valid range."""

__all__ = ["ParameterError", "NoSolutionError"]


class ParameterError(ValueError):
    """A parameter is out of its valid range, of the wrong type, NaN or infinite."""


class NoSolutionError(ParameterError):
    """The request is well-formed but has no solution (e.g. no edge-of-chaos point)."""
