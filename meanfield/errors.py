"""Errors raised for bad input: each names the parameter and its valid range."""

__all__ = ["ParameterError", "NoSolutionError", "DataError", "InUseError"]


class ParameterError(ValueError):
    """A parameter is out of its valid range, of the wrong type, NaN or infinite."""


class NoSolutionError(ParameterError):
    """The request is well-formed but has no solution (e.g. no edge-of-chaos point)."""


class DataError(ParameterError):
    """A data file is missing, corrupt, partial or not the data it claims to be (the
    message names the file and what to do). A ParameterError, so that every entry point
    that reports bad input reports it the same way."""


class InUseError(ParameterError):
    """Another process holds what was asked for: it is training the same run directory, or
    writing the same journal (the message names it and says what to do)."""
