r"""Finite networks that check the mean-field theory: a numpy MLP with sparse passes.

- :class:`MLP`: a fully connected network initialised on the edge of chaos (or from any
  :class:`~meanfield.maps.Initialisation`), forward and backward passes that skip inactive
  units, in float32 or float64, seeded;
- :func:`simulate`: wide random networks layer by layer next to the theory's maps.

This package uses the analytic core and is never imported by it.
"""

from .mlp import (BACKENDS, MLP, Gradients, PerformanceWarning, available_backends, cross_entropy,
                  default_backend, describe_backend, normalise_inputs)
from .simulate import (RUNAWAY_FACTOR, Simulation, Theory, finite_width_model, jacobian_theory, simulate,
                       simulation_figure, theory_trajectory)

__all__ = ["MLP", "Gradients", "BACKENDS", "available_backends", "default_backend", "describe_backend",
           "PerformanceWarning",
           "normalise_inputs", "cross_entropy", "simulate", "Simulation", "Theory",
           "theory_trajectory", "finite_width_model", "jacobian_theory", "simulation_figure",
           "RUNAWAY_FACTOR"]
