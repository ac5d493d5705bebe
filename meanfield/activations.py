r"""Piecewise-polynomial activations, stored as data.

An activation :math:`\phi:\mathbb{R}\to\mathbb{R}` is an ordered tuple of pieces
:math:`(a_i, b_i, p_i)` with :math:`a_0=-\infty < b_0=a_1 < \dots < b_n=+\infty`, and
:math:`\phi(x)=p_i(x)` on :math:`(a_i, b_i)`, each :math:`p_i` a polynomial in :math:`x`.
Breakpoints and coefficients are exact sympy expressions that may contain the
activation's parameters (``tau``, ``m``, ...), so the closed forms of
:mod:`meanfield.symbolic` are derived once, symbolically, for every parameter value.
:math:`\phi` need not be continuous; :math:`\phi'` is the derivative of the pieces
(its Dirac part at jumps and kinks is handled in :mod:`meanfield.symbolic`).

Built in (Price et al., ICLR 2024, section 2; threshold ``tau >= 0``, clip ``m > 0``):

- ``RELU``: :math:`\max(x, 0)`
- ``RELU_TAU``: :math:`\max(x-\tau, 0)`
- ``ST``: :math:`\operatorname{sign}(x)\max(|x|-\tau, 0)` (soft threshold)
- ``CRELU``: :math:`\min(\max(x-\tau, 0), m)`
- ``CST``: :math:`\operatorname{sign}(x)\min(\max(|x|-\tau, 0), m)`
- ``HARD_TANH``: :math:`\max(-1, \min(x, 1))` and ``LEAKY_RELU``: :math:`\max(x, \alpha x)`,
  which are not in the paper and show that nothing below is special-cased.

>>> import numpy as np
>>> CRELU(np.array([-1.0, 0.7, 3.0]), tau=0.5, m=1.0)
array([0. , 0.2, 1. ])
>>> CST.derivative(np.array([-1.0, 0.2, 3.0]), tau=0.5, m=1.0)
array([1., 0., 0.])
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ._types import ActivationLike
from .errors import ParameterError
from .validation import real

__all__ = [
    "x", "tau", "m", "alpha", "Piece", "Parameter", "SparsityRule", "Activation",
    "RELU", "RELU_TAU", "ST", "CRELU", "CST", "HARD_TANH", "LEAKY_RELU",
    "BUILTIN", "PAPER_ACTIVATIONS", "get_activation", "register", "registered", "by_sparsity",
]

#: The pre-activation variable of every piece.
x = sp.Symbol("x", real=True)
#: Threshold parameter (sparsity).
tau = sp.Symbol("tau", nonnegative=True)
#: Clip level.
m = sp.Symbol("m", positive=True)
#: Negative-side slope of the leaky ReLU.
alpha = sp.Symbol("alpha", real=True)


@dataclass(frozen=True)
class Piece:
    """phi(x) = ``poly`` for ``lower < x < upper`` (sympy expressions)."""

    lower: sp.Expr
    upper: sp.Expr
    poly: sp.Expr


@dataclass(frozen=True)
class Parameter:
    """An activation parameter with its valid range ``[lower, upper]``.

    Fields, in order: ``symbol`` (a sympy Symbol used in the pieces), ``lower`` (default
    -inf), ``upper`` (default inf), ``lower_open`` / ``upper_open`` (False; True makes
    that end strict) and ``default`` (used when the caller does not give the parameter;
    ``None``: it must be given).

    >>> import sympy as sp
    >>> a = Parameter(sp.Symbol("a"), 0.0, 1.0, default="0.05")   # a in [0, 1], default 0.05
    >>> a.range_text(), a.contains(1.5)
    ('[0, 1]', False)
    """

    symbol: sp.Symbol
    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False
    upper_open: bool = False
    default: float | str | None = None

    @property
    def name(self) -> str:
        return self.symbol.name

    def range_text(self) -> str:
        lo = "(" if self.lower_open or self.lower == -math.inf else "["
        hi = ")" if self.upper_open or self.upper == math.inf else "]"
        return f"{lo}{self.lower:g}, {self.upper:g}{hi}"

    def contains(self, value) -> bool:
        v = float(value)
        if math.isnan(v) or math.isinf(v):
            return False
        if v < self.lower or (self.lower_open and v == self.lower):
            return False
        if v > self.upper or (self.upper_open and v == self.upper):
            return False
        return True


@dataclass(frozen=True)
class SparsityRule:
    r"""How a target sparsity s sets an activation's threshold (optional data of an
    :class:`Activation`): for an activation that is exactly 0 on :math:`(-\infty, \tau]`
    (``symmetric=False``) or on :math:`[-\tau, \tau]` (``symmetric=True``) and nowhere
    else, :math:`P(\phi(\sqrt q z) = 0)` is :math:`\Phi(\tau/\sqrt q)` or
    :math:`2\Phi(\tau/\sqrt q) - 1`, so s sets :math:`\tau = \sqrt{q^*}\,
    \Phi^{-1}(\mathrm{level}(s))`. ``threshold``: the parameter that s sets; ``clip``: the
    parameter that ``clip=`` or ``v_prime=`` sets (None: the activation is not clipped).
    The EoC solve checks the rule against the closed-form sparsity of the pieces.

    >>> SparsityRule(symmetric=True).lowest, SparsityRule().level(0.8)
    (0.0, 0.8)
    """

    threshold: str = "tau"
    symmetric: bool = False
    clip: str | None = None

    @property
    def lowest(self) -> float:
        """The sparsity at threshold 0: the least a target may be."""
        return 0.0 if self.symmetric else 0.5

    @property
    def clipped(self) -> bool:
        return self.clip is not None

    def level(self, s):
        """Phi(tau / sqrt(q*)) for the target sparsity ``s`` (works on mpf)."""
        return (1 + s) / 2 if self.symmetric else s


#: Every number given to meanfield must be 0 or of magnitude in [1e-100, 1e30]: the
#: float64 interval arithmetic that certifies the fixed-point search neither overflows
#: nor underflows there.
@dataclass(frozen=True)
class Activation:
    """A piecewise-polynomial activation: a name, pieces and parameters.

    Pieces must cover the real line in order (first lower end ``-oo``, last upper end
    ``+oo``, each upper end equal to the next lower end), and each ``poly`` must be a
    polynomial in :data:`x` whose other symbols are parameters.

    >>> import sympy as sp
    >>> from meanfield.activations import Activation, Piece, x
    >>> step = Activation("step", (Piece(-sp.oo, 0, sp.Integer(0)), Piece(0, sp.oo, sp.Integer(1))))
    >>> step.breakpoints
    (0,)
    """

    name: str
    pieces: tuple[Piece, ...]
    parameters: tuple[Parameter, ...] = ()
    description: str = field(default="", compare=False)
    #: how a target sparsity sets the threshold (None: the activation is parametrised
    #: directly); see :class:`SparsityRule`
    sparsity_rule: SparsityRule | None = field(default=None, compare=False)
    #: the name shown in tables and figures (default: ``name``)
    label: str = field(default="", compare=False)

    def __post_init__(self):
        pieces = tuple(
            Piece(sp.sympify(p.lower), sp.sympify(p.upper), sp.sympify(p.poly)) for p in self.pieces
        )
        object.__setattr__(self, "pieces", pieces)
        if not pieces:
            raise ValueError("an activation needs at least one piece")
        if pieces[0].lower != -sp.oo or pieces[-1].upper != sp.oo:
            raise ValueError("the pieces must start at -oo and end at +oo")
        for a, b in zip(pieces, pieces[1:]):
            if sp.simplify(a.upper - b.lower) != 0:
                raise ValueError(f"piece ends {a.upper} and {b.lower} do not meet")
        allowed = {x} | {p.symbol for p in self.parameters}
        for p in pieces:
            if not p.poly.is_polynomial(x):
                raise ValueError(f"{p.poly} is not a polynomial in x")
            for e in (p.lower, p.upper, p.poly):
                extra = e.free_symbols - allowed
                if extra:
                    raise ValueError(f"{e} uses symbols {extra} that are not parameters")
            if p.lower.has(x) or p.upper.has(x):
                raise ValueError("breakpoints may not depend on x")
        rule = self.sparsity_rule
        if rule is not None:
            if not isinstance(rule, SparsityRule):
                raise ValueError(f"sparsity_rule must be a SparsityRule, got {rule!r}")
            names = {p.name for p in self.parameters}
            for role, name in (("threshold", rule.threshold), ("clip", rule.clip)):
                if name is not None and name not in names:
                    raise ValueError(f"the sparsity rule's {role} {name!r} is not a parameter of {self.name}")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    @property
    def has_zero_piece(self) -> bool:
        """Whether phi is exactly 0 on some piece: without one its sparsity is 0 (a hidden
        unit is 0 only on a null set)."""
        return any(p.poly == 0 for p in self.pieces)

    # -- structure -------------------------------------------------------------------
    @property
    def symbols(self) -> tuple[sp.Symbol, ...]:
        return tuple(p.symbol for p in self.parameters)

    @property
    def breakpoints(self) -> tuple[sp.Expr, ...]:
        return tuple(p.upper for p in self.pieces[:-1])

    def parameter_values(self, **values) -> dict[str, object]:
        """Validate parameter values, fill defaults, check the breakpoints are ordered.

        Raises :class:`~meanfield.errors.ParameterError` naming the parameter and its
        valid range.
        """
        known = {p.name for p in self.parameters}
        unknown = set(values) - known
        if unknown:
            raise ParameterError(
                f"activation {self.name!r} has no parameter {sorted(unknown)[0]!r}"
                + (f" (its parameters: {', '.join(sorted(known))})" if known else " (it takes none)")
            )
        out = {}
        for p in self.parameters:
            v = values.get(p.name)
            if v is None:
                if p.default is None:
                    raise ParameterError(f"activation {self.name!r} needs {p.name} in {p.range_text()}")
                v = p.default
            real(p.name, v, f"in {p.range_text()}")
            if not p.contains(v):
                raise ParameterError(f"{p.name} = {v} is out of range: must be in {p.range_text()}")
            out[p.name] = v
        bps = [float(sp.sympify(b).subs({s: float(out[s.name]) for s in self.symbols}))
               for b in self.breakpoints]
        if any(b2 < b1 for b1, b2 in zip(bps, bps[1:])):
            raise ParameterError(f"{self.name}: parameters {out} give unordered breakpoints {bps}")
        return out

    # -- numpy evaluation ------------------------------------------------------------
    def numeric_pieces(self, derivative: bool = False, **values):
        """[(lower, upper, numpy.poly1d)] with the parameters substituted (floats)."""
        values = self.parameter_values(**values)
        args = [float(values[s.name]) for s in self.symbols]
        return [(lo(*args), hi(*args), np.poly1d(coeffs(*args)))
                for lo, hi, coeffs in _piece_functions(self, derivative)]

    def _evaluate(self, xs, derivative: bool, values: dict):
        pieces = self.numeric_pieces(derivative, **values)
        ends = np.asarray([hi for _, hi, _ in pieces[:-1]], dtype=float)
        xs = np.asarray(xs, dtype=float)
        # Piece i holds x in (ends[i-1], ends[i]]; a breakpoint itself is a null set.
        index = np.searchsorted(ends, xs, side="left")
        out = np.zeros_like(xs)
        for i, (_, _, poly) in enumerate(pieces):
            sel = index == i
            if np.any(sel):
                out[sel] = poly(xs[sel])
        return out

    def __call__(self, xs, **values):
        """phi(xs), vectorized with numpy."""
        return self._evaluate(xs, False, values)

    def derivative(self, xs, **values):
        """phi'(xs) away from the breakpoints, vectorized with numpy."""
        return self._evaluate(xs, True, values)

    def __str__(self):
        return self.name


@functools.lru_cache(maxsize=None)
def _piece_functions(activation: Activation, derivative: bool):
    """Per piece: compiled (lower end, upper end, coefficient list) of the parameters."""
    out = []
    for p in activation.pieces:
        poly = sp.diff(p.poly, x) if derivative else p.poly
        coeffs = sp.Poly(poly, x).all_coeffs()
        out.append(tuple(sp.lambdify(activation.symbols, e, modules="math")
                         for e in (p.lower, p.upper, coeffs)))
    return out


_ZERO = sp.Integer(0)

RELU = Activation(
    "relu0",
    (Piece(-sp.oo, 0, _ZERO), Piece(0, sp.oo, x)),
    description="ReLU max(x, 0)",
    label="ReLU",
)
RELU_TAU = Activation(
    "relu",
    (Piece(-sp.oo, tau, _ZERO), Piece(tau, sp.oo, x - tau)),
    (Parameter(tau, 0.0, default=0.0),),
    description="shifted ReLU max(x - tau, 0)",
    sparsity_rule=SparsityRule(),
    label="ReLU_tau",
)
ST = Activation(
    "st",
    (Piece(-sp.oo, -tau, x + tau), Piece(-tau, tau, _ZERO), Piece(tau, sp.oo, x - tau)),
    (Parameter(tau, 0.0, default=0.0),),
    description="soft threshold sign(x) max(|x| - tau, 0)",
    sparsity_rule=SparsityRule(symmetric=True),
    label="ST_tau",
)
CRELU = Activation(
    "crelu",
    (Piece(-sp.oo, tau, _ZERO), Piece(tau, tau + m, x - tau), Piece(tau + m, sp.oo, m)),
    (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)),
    description="clipped shifted ReLU min(max(x - tau, 0), m)",
    sparsity_rule=SparsityRule(clip="m"),
    label="CReLU",
)
CST = Activation(
    "cst",
    (
        Piece(-sp.oo, -tau - m, -m),
        Piece(-tau - m, -tau, x + tau),
        Piece(-tau, tau, _ZERO),
        Piece(tau, tau + m, x - tau),
        Piece(tau + m, sp.oo, m),
    ),
    (Parameter(tau, 0.0, default=0.0), Parameter(m, 0.0, lower_open=True)),
    description="clipped soft threshold sign(x) min(max(|x| - tau, 0), m)",
    sparsity_rule=SparsityRule(symmetric=True, clip="m"),
    label="CST",
)
HARD_TANH = Activation(
    "hard_tanh",
    (Piece(-sp.oo, -1, sp.Integer(-1)), Piece(-1, 1, x), Piece(1, sp.oo, sp.Integer(1))),
    description="hard tanh max(-1, min(x, 1))",
    label="hard tanh",
)
LEAKY_RELU = Activation(
    "leaky_relu",
    (Piece(-sp.oo, 0, alpha * x), Piece(0, sp.oo, x)),
    (Parameter(alpha, -1.0, 1.0, default="0.01"),),
    description="leaky ReLU max(x, alpha x)",
    label="leaky ReLU",
)

#: Built-in activations by name. ``relu`` is the shifted ReLU (``tau`` defaults to 0).
BUILTIN: dict[str, Activation] = {
    a.name: a for a in (RELU_TAU, ST, CRELU, CST, RELU, HARD_TANH, LEAKY_RELU)
}

#: The four activations of Price et al. (2024), for which sparsity sets ``tau``.
PAPER_ACTIVATIONS = ("relu", "st", "crelu", "cst")

_REGISTERED: dict[str, Activation] = {}


def register(activation: Activation) -> Activation:
    """Make a user's activation known by its name, as the built-ins are: to
    :func:`get_activation`, and so to everything that takes an activation's name (a
    training configuration, a journal read back). A built-in's name cannot be taken, nor
    a registered name by another activation.

    >>> import sympy as sp
    >>> half = Activation("half_relu", (Piece(-sp.oo, tau, 0), Piece(tau, sp.oo, (x - tau) / 2)),
    ...                   (Parameter(tau, 0.0, default=0.0),), sparsity_rule=SparsityRule())
    >>> register(half) is get_activation("half_relu")
    True
    """
    if not isinstance(activation, Activation):
        raise ParameterError(f"only an Activation can be registered, got {type(activation).__name__}")
    taken = BUILTIN.get(activation.name) or _REGISTERED.get(activation.name)
    if taken is not None and taken != activation:
        raise ParameterError(f"the name {activation.name!r} is taken by another activation: choose another name")
    _REGISTERED[activation.name] = activation
    return activation


def registered() -> dict[str, Activation]:
    """Every activation known by name: the built-ins, then those registered."""
    return {**BUILTIN, **_REGISTERED}


def by_sparsity() -> dict[str, Activation]:
    """The activations known by name for which a target sparsity sets the threshold."""
    return {k: a for k, a in registered().items() if a.sparsity_rule is not None}


def get_activation(activation: ActivationLike) -> Activation:
    """An :class:`Activation` from itself or its name (built-in or registered).

    >>> get_activation("cst").breakpoints
    (-m - tau, -tau, tau, m + tau)
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str) and activation in registered():
        return registered()[activation]
    raise ParameterError(
        f"activation must be an Activation or one of {', '.join(registered())}; got {activation!r}"
    )
