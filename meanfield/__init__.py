r"""meanfield: mean-field (edge-of-chaos) theory of deep networks with sparsifying activations.

The public API is this small facade; the modules below it follow the data flow
``activations -> symbolic -> maps -> eoc / fixed_points / correlation / jacobian ->
diagnose -> tables / scan -> plots -> cli``. Each name is imported on its first use
(``import meanfield`` itself loads neither sympy nor scipy), ``meanfield.plots``
(matplotlib) likewise.

>>> import meanfield as mf
>>> sol = mf.eoc_parameters("crelu", sparsity="0.85", v_prime="0.9", digits=20)
>>> mf.nstr(sol.m, 5), [p.kind for p in sol.fixed_points.points]
('1.7395', ['stable'])
>>> v = mf.map_values(sol.init, 1, digits=20)     # the maps at q* = 1
>>> mf.nstr(v.v_prime, 10), mf.nstr(v.chi1, 10), mf.nstr(v.sparsity, 10)
('0.9', '1.0', '0.85')
"""

import sys
import types
from typing import TYPE_CHECKING

from .errors import NoSolutionError, ParameterError

#: Where each name of the facade lives. ``import meanfield`` imports none of these modules
#: (sympy, scipy and mpmath take most of a second to load): a name's module is imported
#: the first time the name is used.
_EXPORTS = {
    ".activations": ("BUILTIN", "CRELU", "CST", "HARD_TANH", "LEAKY_RELU", "RELU", "RELU_TAU", "ST",
                     "Activation", "Parameter", "Piece", "get_activation"),
    ".correlation": ("CorrelationFixedPoint", "CorrelationReport", "CorrelationValues", "Divergent",
                     "KernelValues", "correlation_fixed_points", "correlation_map", "depth_scale", "kernel_map"),
    ".diagnose": ("Diagnosis", "diagnose"),
    ".eoc": ("EoCSolution", "eoc_parameters", "eoc_weights"),
    ".fixed_points": ("FixedPoint", "FixedPointReport", "fixed_points"),
    ".jacobian": ("JacobianSpectrum", "jacobian_spectrum"),
    ".maps": ("Initialisation", "MapValues", "map_values", "map_values_float64", "variance_map"),
    ".recommend": ("Recommendation", "recommend"),
    ".scan": ("PhaseDiagram", "eoc_curve", "phase_diagram"),
    ".symbolic": ("Formulas", "derive"),
    ".tables": ("Configuration", "StabilityRow", "StabilityTable", "configuration_grid", "paper_grid",
                "parse_values", "stability_table"),
    "mpmath": ("nstr",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

if TYPE_CHECKING:  # what type checkers and the API docs read; the same names as _EXPORTS (tested)
    from mpmath import nstr

    from .activations import (
        BUILTIN,
        CRELU,
        CST,
        HARD_TANH,
        LEAKY_RELU,
        RELU,
        RELU_TAU,
        ST,
        Activation,
        Parameter,
        Piece,
        get_activation,
    )
    from .correlation import (
        CorrelationFixedPoint,
        CorrelationReport,
        CorrelationValues,
        Divergent,
        KernelValues,
        correlation_fixed_points,
        correlation_map,
        depth_scale,
        kernel_map,
    )
    from .diagnose import Diagnosis, diagnose
    from .eoc import EoCSolution, eoc_parameters, eoc_weights
    from .fixed_points import FixedPoint, FixedPointReport, fixed_points
    from .jacobian import JacobianSpectrum, jacobian_spectrum
    from .maps import (
        Initialisation,
        MapValues,
        map_values,
        map_values_float64,
        variance_map,
    )
    from .recommend import Recommendation, recommend
    from .scan import PhaseDiagram, eoc_curve, phase_diagram
    from .symbolic import Formulas, derive
    from .tables import (
        Configuration,
        StabilityRow,
        StabilityTable,
        configuration_grid,
        paper_grid,
        parse_values,
        stability_table,
    )

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
    "Recommendation", "recommend",
    "ParameterError", "NoSolutionError", "nstr",
]


class _Facade(types.ModuleType):
    """The package's module type: a submodule named like a facade function
    (``meanfield.diagnose``, ``meanfield.fixed_points``) does not replace that function
    as the package's attribute when it is imported (it stays in ``sys.modules``)."""

    def __setattr__(self, name, value):
        if name in _MODULE_OF and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade


def __getattr__(name):
    import importlib
    if name in _MODULE_OF:  # first use: import its module, and keep the name here
        value = getattr(importlib.import_module(_MODULE_OF[name], __name__), name)
        globals()[name] = value
        return value
    if name == "plots":  # matplotlib only when figures are asked for
        return importlib.import_module(".plots", __name__)
    raise AttributeError(f"module 'meanfield' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
