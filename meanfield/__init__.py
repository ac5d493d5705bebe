r"""meanfield: mean-field (edge-of-chaos) theory of deep networks with sparsifying activations.

The public API is this small facade; the modules below it follow the data flow
``activations -> symbolic -> maps -> eoc / fixed_points / correlation / jacobian ->
diagnose -> tables / scan -> plots -> cli``. ``meanfield.plots`` (matplotlib) is imported
on first use.

>>> import meanfield as mf
>>> sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.9", digits=20)
>>> mf.nstr(sol.m, 5), [p.kind for p in sol.fixed_points.points]
('1.7395', ['stable'])
>>> v = mf.map_values(sol.init, 1, digits=20)     # the maps at q* = 1
>>> mf.nstr(v.v_prime, 10), mf.nstr(v.chi1, 10), mf.nstr(v.sparsity, 10)
('0.9', '1.0', '0.85')
"""

from mpmath import nstr

from .activations import (BUILTIN, CRELU, CST, HARD_TANH, LEAKY_RELU, RELU, RELU_TAU, ST,
                          Activation, Parameter, Piece, get_activation)
from .correlation import (CorrelationFixedPoint, CorrelationReport, CorrelationValues, Divergent,
                          KernelValues, correlation_fixed_points, correlation_map, depth_scale,
                          kernel_map)
from .diagnose import Diagnosis, diagnose
from .eoc import EoCSolution, eoc_parameters, eoc_weights
from .errors import NoSolutionError, ParameterError
from .fixed_points import FixedPoint, FixedPointReport, fixed_points
from .jacobian import JacobianSpectrum, jacobian_spectrum
from .maps import Initialisation, MapValues, map_values, map_values_float64, variance_map
from .scan import PhaseDiagram, eoc_curve, phase_diagram
from .symbolic import Formulas, derive
from .tables import (Configuration, StabilityRow, StabilityTable, configuration_grid, paper_grid,
                     parse_values, stability_table)

__version__ = "0.1.0"

__all__ = [
    "Activation", "Piece", "Parameter", "BUILTIN", "get_activation",
    "RELU", "RELU_TAU", "ST", "CRELU", "CST", "HARD_TANH", "LEAKY_RELU",
    "Formulas", "derive",
    "Initialisation", "MapValues", "map_values", "map_values_float64", "variance_map",
    "FixedPoint", "FixedPointReport", "fixed_points",
    "EoCSolution", "eoc_parameters", "eoc_weights",
    "KernelValues", "CorrelationValues", "CorrelationFixedPoint", "CorrelationReport", "Divergent",
    "kernel_map", "correlation_map", "correlation_fixed_points", "depth_scale",
    "JacobianSpectrum", "jacobian_spectrum", "Diagnosis", "diagnose",
    "Configuration", "configuration_grid", "paper_grid", "parse_values", "StabilityRow",
    "StabilityTable", "stability_table", "PhaseDiagram", "phase_diagram", "eoc_curve",
    "ParameterError", "NoSolutionError", "nstr",
]


def __getattr__(name):
    if name == "plots":  # matplotlib only when figures are asked for
        import importlib
        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")
