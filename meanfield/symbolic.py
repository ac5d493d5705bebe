r"""Closed-form Gaussian expectations of piecewise-polynomial activations (sympy).

With :math:`z\sim N(0,1)`, :math:`x=\sqrt q\,z` and a piece :math:`p` on :math:`(a,b)`,
write :math:`\alpha=a/\sqrt q`, :math:`\beta=b/\sqrt q` and
:math:`p(\sqrt q\,z)^2=\sum_k c_k q^{k/2} z^k`. Then

.. math::

    E\big[p(x)^2\,1\{a<x<b\}\big] = \sum_k c_k\, q^{k/2} M_k(\alpha,\beta),\qquad
    M_k(\alpha,\beta) = \int_\alpha^\beta z^k\varphi(z)\,dz,

with :math:`M_0=\Phi(\beta)-\Phi(\alpha)`, :math:`M_1=\varphi(\alpha)-\varphi(\beta)` and,
by parts, :math:`M_k=\alpha^{k-1}\varphi(\alpha)-\beta^{k-1}\varphi(\beta)+(k-1)M_{k-2}`
(terms at :math:`\pm\infty` vanish). Summing over the pieces gives, exactly and in terms
of :math:`\Phi,\varphi` only (Poole et al. 2016 for the maps; Price et al. 2024, section 3):

- :math:`V(q)=\sigma_b^2+\sigma_w^2E[\phi(\sqrt q z)^2]` (the variance map),
- :math:`\chi_1(q)=\sigma_w^2E[\phi'(\sqrt q z)^2]`,
- the sparsity :math:`P(\phi(\sqrt q z)=0)` (the pieces whose polynomial is 0),
- :math:`V'(q)` by the heat equation :math:`\partial_q E[g(\sqrt q z)]=\tfrac12E[g''(\sqrt q z)]`
  applied to :math:`g=\phi^2` in the sense of distributions (Stein's lemma; Price et al.
  2024, Lemma 1): :math:`V'(q)=\chi_1(q)+\sigma_w^2\big(E[\phi\phi''] +\tfrac12\sum_b
  p_q(b)\,(\Delta(\phi^2)'(b)+\tfrac bq\Delta(\phi^2)(b))\big)`, where :math:`b` runs over
  the breakpoints, :math:`\Delta` is the jump across :math:`b` and :math:`p_q` the
  :math:`N(0,q)` density. The kinks and clips are these boundary terms. For ReLU_tau and
  ST_tau they vanish (:math:`\phi(b)=0` at every kink), so :math:`V'=\chi_1`.
- :math:`V''(q)` by differentiating that closed form in :math:`q`.

Every piece is integrated over its own interval: a Piecewise over the real line is never
handed to sympy. Derivation is cached per activation (:func:`derive`).

>>> from meanfield.activations import CRELU
>>> f = derive(CRELU)
>>> print(f.text("sparsity"))
Phi(tau/sqrt(q))
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass

import sympy as sp

from ._types import ActivationLike
from .activations import Activation, get_activation, x
from .closed_forms import FORMULA_NAMES, PRINTERS, has_store
from .closed_forms import entry as stored_entry

__all__ = ["Phi", "phi", "q", "sigma_w2", "sigma_b2", "Formulas", "derive", "truncated_moment",
           "FORMULA_NAMES", "DiracTerm", "degree", "dirac_part", "derivative_mean",
           "derivative_power_mean", "power_mean", "bivariate_density_derivative",
           "origin_remainder"]

q = sp.Symbol("q", positive=True)
sigma_w2 = sp.Symbol("sigma_w2", positive=True)
sigma_b2 = sp.Symbol("sigma_b2", nonnegative=True)
_z = sp.Symbol("z", real=True)


class Phi(sp.Function):
    """Standard normal cumulative distribution function."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg is sp.S.Infinity:
            return sp.S.One
        if arg is sp.S.NegativeInfinity:
            return sp.S.Zero
        if arg.is_zero:
            return sp.S.Half
        return None

    def fdiff(self, argindex=1):
        return phi(self.args[0])

    def _eval_rewrite_as_erfc(self, arg, **kwargs):
        return sp.erfc(-arg / sp.sqrt(2)) / 2


class phi(sp.Function):  # noqa: N801 - the conventional name of the normal density
    """Standard normal probability density function (even: phi(-x) is phi(x))."""

    nargs = 1

    @classmethod
    def eval(cls, arg):
        if arg is sp.S.Infinity or arg is sp.S.NegativeInfinity:
            return sp.S.Zero
        if arg.could_extract_minus_sign():
            return cls(-arg)
        return None

    def fdiff(self, argindex=1):
        return -self.args[0] * phi(self.args[0])

    def _eval_rewrite_as_exp(self, arg, **kwargs):
        return sp.exp(-arg**2 / 2) / sp.sqrt(2 * sp.pi)


def truncated_moment(k: int, lo, hi) -> sp.Expr:
    r""":math:`\int_{lo}^{hi} z^k\varphi(z)\,dz` in closed form (ends may be :math:`\pm\infty`).

    >>> truncated_moment(2, -sp.oo, sp.oo)
    1
    >>> truncated_moment(1, 0, sp.oo)
    phi(0)
    """
    lo, hi = sp.sympify(lo), sp.sympify(hi)
    if k == 0:
        # Written so that float64 and mpmath do not cancel in the tails: an upper tail
        # as Phi(-lo), an interval right of 0 as a difference of upper tails, a symmetric
        # one as erf.
        if hi is sp.S.Infinity:
            return Phi(-lo)
        if lo is sp.S.NegativeInfinity:
            return Phi(hi)
        if sp.simplify(lo + hi) == 0:
            return sp.erf(hi / sp.sqrt(2))
        if lo.is_nonnegative:
            return Phi(-lo) - Phi(-hi)
        return Phi(hi) - Phi(lo)
    if k == 1:
        return phi(lo) - phi(hi)

    def edge(e):
        return sp.S.Zero if e.is_infinite else e ** (k - 1) * phi(e)

    return edge(lo) - edge(hi) + (k - 1) * truncated_moment(k - 2, lo, hi)


def _gaussian_expectation(pieces) -> sp.Expr:
    r""":math:`E[\sum_i f_i(\sqrt q z)1\{a_i<\sqrt q z<b_i\}]` for polynomials :math:`f_i`."""
    root_q = sp.sqrt(q)
    total = sp.S.Zero
    for lo, hi, poly in pieces:
        poly = sp.expand(poly)
        if poly == 0:
            continue
        if poly.has(sp.Piecewise):  # a parameter-dependent indicator times the mass
            total += poly * truncated_moment(0, lo if lo.is_infinite else lo / root_q,
                                             hi if hi.is_infinite else hi / root_q)
            continue
        alpha = lo if lo.is_infinite else lo / root_q
        beta = hi if hi.is_infinite else hi / root_q
        in_z = sp.Poly(sp.expand(poly.subs(x, root_q * _z)), _z)
        for (k,), coeff in in_z.terms():
            total += coeff * truncated_moment(k, alpha, beta)
    return total


def _is_zero(poly) -> sp.Expr:
    """1 where the polynomial is identically 0 (possibly only for some parameter values,
    e.g. alpha x at alpha = 0), else 0, as a sympy expression."""
    coeffs = sp.Poly(sp.expand(poly), x).all_coeffs()
    if all(c == 0 for c in coeffs):
        return sp.S.One
    if any(c.is_number and c != 0 for c in coeffs):
        return sp.S.Zero
    return sp.Piecewise((1, sp.And(*[sp.Eq(c, 0) for c in coeffs])), (0, True))


def _normal_density(b) -> sp.Expr:
    """Density of N(0, q) at b."""
    return phi(b / sp.sqrt(q)) / sp.sqrt(q)


def _tidy(expr: sp.Expr) -> sp.Expr:
    """Expand, then group the terms by the Phi and phi values they multiply."""
    expr = sp.expand(expr)
    terms = sorted(expr.atoms(Phi, phi), key=sp.default_sort_key)
    return sp.collect(expr, terms, func=sp.factor) if terms else expr


_DESCRIPTIONS = {
    "e_phi2": "E[phi(sqrt(q) z)^2]",
    "e_dphi2": "E[phi'(sqrt(q) z)^2]",
    "sparsity": "P(phi(sqrt(q) z) = 0)",
    "variance": "V(q) = sigma_b2 + sigma_w2 E[phi^2]",
    "chi1": "chi_1(q) = sigma_w2 E[phi'^2]",
    "boundary": "V'(q) - chi_1(q) (kink and clip terms)",
    "v_prime": "V'(q)",
    "v_second": "V''(q)",
}


@dataclass(frozen=True)
class Formulas:
    """The closed forms of one activation, as sympy expressions in ``q``, ``sigma_w2``,
    ``sigma_b2`` and the activation's parameters."""

    activation: Activation
    e_phi2: sp.Expr
    e_dphi2: sp.Expr
    sparsity: sp.Expr
    variance: sp.Expr
    chi1: sp.Expr
    boundary: sp.Expr
    v_prime: sp.Expr
    v_second: sp.Expr

    @property
    def arguments(self) -> tuple[sp.Symbol, ...]:
        """Argument order of every compiled evaluator: q, sigma_w2, sigma_b2, parameters."""
        return (q, sigma_w2, sigma_b2) + self.activation.symbols

    def items(self):
        return [(name, getattr(self, name)) for name in FORMULA_NAMES]

    def text(self, name: str) -> str:
        return sp.sstr(getattr(self, name))

    def latex(self, name: str) -> str:
        return sp.latex(getattr(self, name))

    @staticmethod
    def description(name: str) -> str:
        return _DESCRIPTIONS[name]


@functools.lru_cache(maxsize=None)
def _derive(activation: Activation) -> Formulas:
    pieces = [(p.lower, p.upper, p.poly) for p in activation.pieces]
    e_phi2 = _gaussian_expectation([(a, b, p**2) for a, b, p in pieces])
    e_dphi2 = _gaussian_expectation([(a, b, sp.diff(p, x) ** 2) for a, b, p in pieces])
    sparsity = _gaussian_expectation([(a, b, _is_zero(p)) for a, b, p in pieces])

    # Heat equation / Stein: d/dq E[phi^2] = E[phi'^2] + E[phi phi''] + jump terms.
    smooth = _gaussian_expectation([(a, b, p * sp.diff(p, x, 2)) for a, b, p in pieces])
    jumps = sp.S.Zero
    for left, right in zip(pieces, pieces[1:]):
        b = left[1]
        g_left, g_right = left[2] ** 2, right[2] ** 2
        d_g = (g_right - g_left).subs(x, b)
        d_dg = (sp.diff(g_right, x) - sp.diff(g_left, x)).subs(x, b)
        jumps += _normal_density(b) * (d_dg + b * d_g / q) / 2
    boundary = sigma_w2 * (smooth + jumps)

    e_phi2, e_dphi2, sparsity = _tidy(e_phi2), _tidy(e_dphi2), _tidy(sparsity)
    boundary = _tidy(boundary)
    chi1 = sigma_w2 * e_dphi2
    v_prime = _tidy(chi1 + boundary)
    return Formulas(
        activation=activation,
        e_phi2=e_phi2,
        e_dphi2=e_dphi2,
        sparsity=sparsity,
        variance=sigma_b2 + sigma_w2 * e_phi2,
        chi1=chi1,
        boundary=boundary,
        v_prime=v_prime,
        v_second=_tidy(sp.diff(v_prime, q)),
    )


def derive(activation: ActivationLike) -> Formulas:
    """Derive (once, then from cache) the closed forms of ``activation``.

    >>> from meanfield.activations import RELU_TAU
    >>> f = derive(RELU_TAU)
    >>> f.boundary          # V' = chi_1 for the shifted ReLU: no boundary terms
    0
    >>> derive(RELU_TAU) is f
    True
    """
    return _formulas(get_activation(activation))


# --- the closed forms printed as code, and read back from a store ---------------------

def printed(activation: Activation) -> dict:
    """What :mod:`meanfield.closed_forms` keeps of ``activation``: sympy's srepr of every
    closed form and its source, printed for each of its printers."""
    f = _derive(activation)
    return {"formulas": {n: sp.srepr(getattr(f, n)) for n in FORMULA_NAMES},
            "code": {printer: {n: _source(f.arguments, getattr(f, n), printer) for n in FORMULA_NAMES}
                     for printer in PRINTERS}}


def _source(arguments, expression, printer: str) -> str:
    import inspect
    # Phi and phi (and erf) print as calls by name, bound by whoever compiles the source
    fn = sp.lambdify(arguments, expression, modules=[{"Phi": None, "phi": None, "erf": None}, printer])
    return inspect.getsource(fn)


def formulas_to_text(formulas: Formulas) -> str:
    """The closed forms as text (sympy's srepr of each, exact) that
    :func:`formulas_from_text` reads back."""
    import json
    return json.dumps({name: sp.srepr(getattr(formulas, name)) for name in FORMULA_NAMES}, indent=0)


def formulas_from_text(activation: Activation, text: str) -> Formulas:
    """The :class:`Formulas` of ``activation`` written by :func:`formulas_to_text`
    (ValueError if the text is not that)."""
    import json
    try:
        data = json.loads(text)
    except Exception as exc:  # any damage to the text: derive again
        raise ValueError(f"not a stored derivation ({type(exc).__name__})") from None
    return _formulas_from_srepr(activation, data)


def _formulas_from_srepr(activation: Activation, data) -> Formulas:
    from sympy.functions.elementary.piecewise import (
        ExprCondPair,  # srepr names it; sympy does not export it
    )
    namespace = {**{k: v for k, v in vars(sp).items() if not k.startswith("_")}, "Phi": Phi, "phi": phi,
                 "ExprCondPair": ExprCondPair, "__builtins__": {}}
    try:
        exprs = {name: _srepr_value(data[name], namespace) for name in FORMULA_NAMES}
    except Exception as exc:  # any damage to the text: derive again
        raise ValueError(f"not a stored derivation ({type(exc).__name__})") from None
    if not all(isinstance(e, sp.Basic) for e in exprs.values()):
        raise ValueError("not a stored derivation (not sympy expressions)")
    return Formulas(activation=activation, **exprs)


#: What a stored srepr may call: sympy's constructors of the expressions derived here (none
#: of them parses or evaluates a string as code).
_SREPR_NAMES = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Piecewise", "ExprCondPair", "Equality",
    "Unequality", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan", "And", "Or", "Not",
    "Phi", "phi", "erf", "erfc", "exp", "sqrt", "log", "Abs", "pi", "E", "true", "false", "oo", "zoo", "nan",
    "Half", "One", "Zero", "NegativeOne", "Infinity", "NegativeInfinity", "BooleanTrue", "BooleanFalse"})


def _srepr_value(text: str, namespace: dict):
    """The sympy expression of srepr ``text``, which must be only calls of sympy's
    constructors (:data:`_SREPR_NAMES`) with constant arguments, powers only to a number of
    magnitude at most 64 (checked before it is evaluated: a damaged or foreign file is
    refused, never run, and cannot ask for a huge power)."""
    tree = ast.parse(text, mode="eval")
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in _SREPR_NAMES or node.id not in namespace:
                raise ValueError(node.id)
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, (int, str, bool)) and node.value is not None:
                raise ValueError(repr(node.value))
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise ValueError("call")
            if node.func.id == "Pow" and not _small_number(node.args[1] if len(node.args) == 2 else None):
                raise ValueError("a power that is not a small number")
        elif not isinstance(node, (ast.Expression, ast.keyword, ast.Load, ast.Tuple, ast.List,
                                   ast.UnaryOp, ast.USub)):
            raise ValueError(type(node).__name__)
    return eval(compile(tree, "<derivation>", "eval"), namespace)  # noqa: S307 - checked above


def _small_number(node) -> bool:
    """Whether srepr ``node`` is Integer(k) or Rational(a, b) with |k|, |a|, |b| <= 64, or a
    named small number (Half, One, ...)."""
    if isinstance(node, ast.Name):
        return node.id in ("Half", "One", "Zero", "NegativeOne")
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Integer", "Rational")):
        return False
    values = []
    for a in node.args:
        v = a.operand if isinstance(a, ast.UnaryOp) else a
        if not (isinstance(v, ast.Constant) and type(v.value) is int):
            return False
        values.append(v.value)
    return bool(values) and all(abs(v) <= 64 for v in values)


_loaded: dict = {}


def _formulas(activation: Activation) -> Formulas:
    if not has_store():
        return _derive(activation)
    if activation not in _loaded:
        try:
            _loaded[activation] = _formulas_from_srepr(activation, stored_entry(activation)["formulas"])
        except ValueError:
            _loaded[activation] = _derive(activation)
    return _loaded[activation]


# --- the kernel of a pair of inputs ----------------------------------------------------
#
# For (u1, u2) centred Gaussian with variances q1, q2 and correlation c, Price's theorem
# gives d/dc E[f(u1) g(u2)] = sqrt(q1 q2) E[f'(u1) g'(u2)] (derivatives in the sense of
# distributions). A piecewise polynomial of degree d has a (d+1)-th derivative that is
# purely singular: a sum of Dirac derivatives at the breakpoints. These are the pieces of
# data the correlation solver (meanfield.correlation) needs.

_u = sp.Symbol("u", real=True)
bx, by = sp.symbols("x y", real=True)
corr = sp.Symbol("c", real=True)


@dataclass(frozen=True)
class DiracTerm:
    r"""``weight`` times :math:`\delta^{(order)}(x - position)` (sympy expressions)."""

    position: sp.Expr
    order: int
    weight: sp.Expr


def degree(activation) -> int:
    """Largest degree in x of the activation's pieces."""
    act = get_activation(activation)
    return max(sp.Poly(p.poly, x).degree() for p in act.pieces)


@functools.lru_cache(maxsize=None)
def _dirac_part(activation: Activation, n: int) -> tuple[DiracTerm, ...]:
    terms = []
    for left, right in zip(activation.pieces, activation.pieces[1:]):
        b = left.upper
        for j in range(n):  # delta^(j) carries the jump of phi^(n-1-j) across b
            r = n - 1 - j
            jump = sp.expand((sp.diff(right.poly, x, r) - sp.diff(left.poly, x, r)).subs(x, b))
            if jump != 0:
                terms.append(DiracTerm(b, j, jump))
    return tuple(terms)


def dirac_part(activation, n: int) -> tuple[DiracTerm, ...]:
    r"""Singular part of :math:`\phi^{(n)}`: :math:`\sum_b\sum_{j<n}\Delta_b\phi^{(n-1-j)}\,
    \delta^{(j)}(x-b)`, where :math:`\Delta_b` is the jump across the breakpoint b.

    >>> from meanfield.activations import CRELU
    >>> [(t.position, t.order, t.weight) for t in dirac_part(CRELU, 2)]
    [(tau, 0, 1), (m + tau, 0, -1)]
    """
    return _dirac_part(get_activation(activation), int(n))


@functools.lru_cache(maxsize=None)
def _derivative_mean(activation: Activation, n: int) -> sp.Expr:
    regular = _gaussian_expectation(
        [(p.lower, p.upper, sp.diff(p.poly, x, n)) for p in activation.pieces])
    # E[delta^(j)(u - b)] = (-1)^j p_q^(j)(b), p_q the N(0, q) density.
    density = phi(_u / sp.sqrt(q)) / sp.sqrt(q)
    singular = sum((t.weight * (-1) ** t.order * sp.diff(density, _u, t.order).subs(_u, t.position)
                    for t in _dirac_part(activation, n)), sp.S.Zero)
    return _tidy(regular + singular)


def derivative_mean(activation, n: int) -> sp.Expr:
    r""":math:`E[\phi^{(n)}(\sqrt q z)]` in closed form, Dirac parts included.

    >>> from meanfield.activations import RELU
    >>> derivative_mean(RELU, 2)      # phi'' = delta(x): the N(0, q) density at 0
    phi(0)/sqrt(q)
    """
    return _derivative_mean(get_activation(activation), int(n))


@functools.lru_cache(maxsize=None)
def _derivative_power_mean(activation: Activation, power: int) -> sp.Expr:
    return _tidy(_gaussian_expectation(
        [(p.lower, p.upper, sp.diff(p.poly, x) ** power) for p in activation.pieces]))


def derivative_power_mean(activation, power: int) -> sp.Expr:
    r""":math:`E[\phi'(\sqrt q z)^{k}]` (regular part of :math:`\phi'`), e.g. ``power=4``
    for the second moment of the Jacobian spectrum.

    >>> from meanfield.activations import RELU_TAU
    >>> derivative_power_mean(RELU_TAU, 4)
    Phi(-tau/sqrt(q))
    """
    return _derivative_power_mean(get_activation(activation), int(power))


@functools.lru_cache(maxsize=None)
def _power_mean(activation: Activation, power: int) -> sp.Expr:
    return _tidy(_gaussian_expectation([(p.lower, p.upper, p.poly ** power) for p in activation.pieces]))


def power_mean(activation, power: int) -> sp.Expr:
    r""":math:`E[\phi(\sqrt q z)^{k}]`, piece by piece like :math:`E[\phi^2]`; ``power=4``
    gives the variance :math:`E[\phi^4]-E[\phi^2]^2` of one unit's :math:`\phi^2`, the size of
    the finite-width fluctuation of the variance map (the central limit theorem over a
    layer's units).

    >>> from meanfield.activations import RELU
    >>> power_mean(RELU, 4)           # E[z^4; z > 0] = 3/2 q^2
    3*q**2/2
    """
    power = int(power)
    if power < 1:
        raise ValueError(f"power must be a positive integer, got {power}")
    return _power_mean(get_activation(activation), power)


@functools.lru_cache(maxsize=None)
def bivariate_density_derivative(i: int, j: int) -> sp.Expr:
    r"""The polynomial factor :math:`P_{ij}` in :math:`\partial_x^i\partial_y^j f = P_{ij} f`,
    f the standard bivariate normal density with correlation c: a polynomial in x, y
    over a power of :math:`1-c^2`.

    >>> bivariate_density_derivative(1, 0)
    (c*y - x)/(1 - c**2)
    """
    f = sp.exp(-(bx**2 - 2 * corr * bx * by + by**2) / (2 * (1 - corr**2)))
    ratio = sp.diff(f, bx, i, by, j) / f
    num, den = sp.fraction(sp.factor(sp.simplify(ratio)))
    # written over a power of (1 - c^2), the form the solver evaluates stably
    k = sp.degree(den, corr) // 2 if den.has(corr) else 0
    num = sp.expand(sp.cancel(num * (1 - corr**2) ** k / den))
    return num / (1 - corr**2) ** k if k else num


@functools.lru_cache(maxsize=None)
def origin_remainder(k: int) -> sp.Expr:
    r""":math:`\int_0^c \frac{(c-t)^k}{k!}\,f(0,0;t)\,dt` in closed form,
    :math:`f(0,0;t)=1/(2\pi\sqrt{1-t^2})`: the whole kernel when every kink sits at 0
    (for ReLU, k = 1, the arc-cosine kernel of Cho & Saul 2009).

    >>> origin_remainder(1)
    (c*asin(c) + sqrt(1 - c**2))/(2*pi) - 1/(2*pi)
    """
    t = sp.Symbol("t", real=True)
    integrand = (corr - t) ** k / sp.factorial(k) / (2 * sp.pi * sp.sqrt(1 - t**2))
    return sp.integrate(integrand, (t, 0, corr))
