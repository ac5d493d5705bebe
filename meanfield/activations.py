r"""Piecewise-polynomial activations, stored as data.

An activation :math:`\phi:\mathbb{R}\to\mathbb{R}` is an ordered tuple of pieces
:math:`(a_i, b_i, p_i)` with :math:`a_0=-\infty < b_0=a_1 < \dots < b_n=+\infty`, and
:math:`\phi(x)=p_i(x)` on :math:`(a_i, b_i)`, each :math:`p_i` a polynomial in :math:`x`.
Breakpoints and coefficients are exact expressions that may contain the activation's
parameters (``tau``, ``m``, ...), so the closed forms of :mod:`meanfield.symbolic` are
derived once, symbolically, for every parameter value. They are sympy expressions, or
their text (Python arithmetic in ``x`` and the parameters, ``oo`` for infinity): an
activation written as text is evaluated numerically without sympy, which reads it only
when a derivation needs it (the built-ins are written so, and a command that finds its
closed forms in the derivation store never imports sympy).
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

import ast
import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._types import ActivationLike
from .errors import ParameterError
from .validation import real

__all__ = [  # noqa: F822 - x, tau, m and alpha come from __getattr__ (sympy, on first use)
    "x", "tau", "m", "alpha", "Piece", "Parameter", "SparsityRule", "Activation",
    "RELU", "RELU_TAU", "ST", "CRELU", "CST", "HARD_TANH", "LEAKY_RELU",
    "BUILTIN", "PAPER_ACTIVATIONS", "get_activation", "register", "registered", "by_sparsity",
]


def _sympy():
    """sympy, imported on first need (it costs about 0.2 s; evaluating a built-in does not
    need it)."""
    import sympy
    return sympy


#: The symbols of the module (``x``, the pre-activation; ``tau``, the threshold; ``m``, the
#: clip level; ``alpha``, the leaky ReLU's negative slope), made by sympy when first used.
_SYMBOLS = {"x": {"real": True}, "tau": {"nonnegative": True}, "m": {"positive": True},
            "alpha": {"real": True}}


def __getattr__(name):
    if name in _SYMBOLS:
        return _sympy().Symbol(name, **_SYMBOLS[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- pieces written as text -------------------------------------------------------------
#
# A piece's text is Python arithmetic (+ - * / **, numbers, ``x``, the parameters' names,
# ``oo``). It is evaluated here, numerically, as a polynomial in x: a list of float
# coefficients, lowest degree first. Sympy reads the same text for the derivations.

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}


class _Poly:
    """A polynomial in x with float coefficients (lowest degree first)."""

    __slots__ = ("c",)

    def __init__(self, c):
        self.c = list(c) or [0.0]

    @staticmethod
    def of(v):
        return v if isinstance(v, _Poly) else _Poly([float(v)])

    def constant(self):
        return all(c == 0 for c in self.c[1:])

    def __add__(self, o):
        o = _Poly.of(o)
        n = max(len(self.c), len(o.c))
        return _Poly([(self.c[i] if i < len(self.c) else 0.0) + (o.c[i] if i < len(o.c) else 0.0)
                      for i in range(n)])

    def __sub__(self, o):
        return self + (-_Poly.of(o))

    def __neg__(self):
        return _Poly([-c for c in self.c])

    def __pos__(self):
        return self

    def __mul__(self, o):
        o = _Poly.of(o)
        if len(self.c) + len(o.c) - 2 > _MAX_EXPONENT:
            raise ValueError(f"a polynomial of degree above {_MAX_EXPONENT}")
        out = [0.0] * (len(self.c) + len(o.c) - 1)
        for i, a in enumerate(self.c):
            for j, b in enumerate(o.c):
                out[i + j] += a * b
        return _Poly(out)

    def __truediv__(self, o):
        o = _Poly.of(o)
        if not o.constant():
            raise ValueError("divides by a polynomial in x")
        return _Poly([c / o.c[0] for c in self.c])

    def __pow__(self, o):
        o = _Poly.of(o)
        if not o.constant():
            raise ValueError("has x in an exponent")
        n = o.c[0]
        if self.constant():
            v = self.c[0] ** n
            if not isinstance(v, float):  # a negative number to a fractional power
                raise ValueError(f"{self.c[0]:g} ** {n:g} is not real")
            return _Poly([v])
        if n != int(n) or n < 0:
            raise ValueError(f"raises x to the power {n:g} (a polynomial needs a whole power >= 0)")
        out = _Poly([1.0])
        for _ in range(int(n)):
            out = out * self
        return out


#: Bounds on a piece's text: its length, the size of a power's exponent (a power of an
#: expression in x must be a whole number in [0, 64]) and how deep it nests.
_MAX_TEXT, _MAX_EXPONENT, _MAX_DEPTH = 1000, 64, 100


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.Expression:
    """The syntax tree of a piece's text, checked before anything evaluates it: numbers,
    names, + - * / and ** with a number of magnitude at most 64 as the exponent (ValueError
    naming what is not allowed)."""
    if not isinstance(text, str) or len(text) > _MAX_TEXT:
        raise ValueError(f"a piece's text must be a string of at most {_MAX_TEXT} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ValueError(f"{text!r} is not arithmetic") from None

    def number(node) -> float | None:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = number(node.operand)
            return None if v is None else (-v if isinstance(node.op, ast.USub) else v)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        return None

    stack = [(tree, 0)]
    while stack:  # the depth, without recursion
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ValueError(f"{text[:40]!r}...: nested more than {_MAX_DEPTH} deep")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float) or not abs(node.value) <= 1e300:
                raise ValueError(f"{text!r}: {node.value!r} is not a number of magnitude at most 1e300")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise ValueError(f"{text!r}: only numbers, + - * / ** and names are allowed")
            if isinstance(node.op, ast.Pow):
                e = number(node.right)
                if e is None or abs(e) > _MAX_EXPONENT:
                    raise ValueError(f"{text!r}: an exponent must be a number of magnitude at most {_MAX_EXPONENT}")
        elif not isinstance(node, (ast.Expression, ast.Name, ast.Load, ast.UnaryOp, ast.USub, ast.UAdd,
                                   ast.operator)):
            raise ValueError(f"{text!r}: only numbers, + - * / ** and names are allowed")
    return tree


class _Undefined(ValueError):
    """A piece's text has no finite real value at these parameter values."""


def _evaluate_text(text: str, values: dict, allow_x: bool) -> _Poly:
    """The polynomial in x (or constant) that ``text`` denotes at the parameter ``values``
    (ValueError naming what is not allowed, or where the text has no finite value)."""
    if text.strip() in ("oo", "+oo", "-oo"):
        return _Poly([-math.inf if text.strip() == "-oo" else math.inf])
    tree = _parse(text)

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant):
            return _Poly([float(node.value)])
        if isinstance(node, ast.Name):
            if node.id == "x" and allow_x:
                return _Poly([0.0, 1.0])
            if node.id in values:
                return _Poly([float(values[node.id])])
            raise ValueError(f"{text!r} uses {node.id!r}, which is not "
                             + ("x or " if allow_x else "") + "a parameter")
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        return -ev(node.operand) if isinstance(node.op, ast.USub) else ev(node.operand)

    try:
        out = ev(tree)
    except (ZeroDivisionError, OverflowError, RecursionError):
        raise _Undefined(f"{text!r} has no finite value at {values}") from None
    if not all(isinstance(c, float) and math.isfinite(c) for c in out.c):
        raise _Undefined(f"{text!r} has no finite real value at {values}")
    return out


def _text_to_sympy(text: str, names: dict):
    """The sympy expression of a piece's text, built from its checked syntax tree (never
    through sympy's string parser, which evaluates what it reads)."""
    sp = _sympy()
    if text.strip() in ("oo", "+oo", "-oo"):
        return -sp.oo if text.strip() == "-oo" else sp.oo
    def build(node):
        if isinstance(node, ast.Expression):
            return build(node.body)
        if isinstance(node, ast.Constant):
            return sp.Integer(node.value) if type(node.value) is int else sp.Float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in names:
                raise ValueError(f"{text!r} uses {node.id!r}, which is not x or a parameter")
            return names[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](build(node.left), build(node.right))  # sympy's operators
        return -build(node.operand) if isinstance(node.op, ast.USub) else build(node.operand)

    return build(_parse(text))


@dataclass(frozen=True)
class Piece:
    """phi(x) = ``poly`` for ``lower < x < upper``: sympy expressions, or their text."""

    lower: Any
    upper: Any
    poly: Any

    def is_text(self) -> bool:
        return all(isinstance(e, str) for e in (self.lower, self.upper, self.poly))


@dataclass(frozen=True)
class Parameter:
    """An activation parameter with its valid range ``[lower, upper]``.

    Fields, in order: ``symbol`` (the sympy Symbol used in the pieces, or its name: then
    the Symbol's assumptions follow from the range: positive, nonnegative or real),
    ``lower`` (default -inf), ``upper`` (default inf), ``lower_open`` / ``upper_open``
    (False; True makes that end strict) and ``default`` (used when the caller does not give
    the parameter; ``None``: it must be given).

    >>> a = Parameter("a", 0.0, 1.0, default="0.05")   # a in [0, 1], default 0.05
    >>> a.range_text(), a.contains(1.5), a.sympy_symbol.is_nonnegative
    ('[0, 1]', False, True)
    """

    symbol: Any
    lower: float = -math.inf
    upper: float = math.inf
    lower_open: bool = False
    upper_open: bool = False
    default: float | str | None = None

    @property
    def name(self) -> str:
        return self.symbol if isinstance(self.symbol, str) else self.symbol.name

    @property
    def sympy_symbol(self):
        """The sympy Symbol: the one given, or one of this name whose assumptions the range
        implies (lower end > 0, or 0 and open: positive; 0: nonnegative; else real)."""
        if not isinstance(self.symbol, str):
            return self.symbol
        if self.lower > 0 or (self.lower == 0 and self.lower_open):
            assumptions = {"positive": True}
        elif self.lower == 0:
            assumptions = {"nonnegative": True}
        else:
            assumptions = {"real": True}
        return _sympy().Symbol(self.symbol, **assumptions)

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


class _PiecesField:
    """The ``pieces`` of an :class:`Activation`: kept as given, always read as sympy
    expressions (text pieces are read by sympy on first use)."""

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError("pieces")  # the dataclass field has no default
        return obj._sympy_pieces()

    def __set__(self, obj, value):
        obj.__dict__["_given"] = tuple(value)


#: Every number given to meanfield must be 0 or of magnitude in [1e-100, 1e30]: the
#: float64 interval arithmetic that certifies the fixed-point search neither overflows
#: nor underflows there.
@dataclass(frozen=True, eq=False, repr=False)
class Activation:
    """A piecewise-polynomial activation: a name, pieces and parameters.

    Pieces must cover the real line in order (first lower end ``-oo``, last upper end
    ``+oo``, each upper end equal to the next lower end), and each ``poly`` must be a
    polynomial in :data:`x` whose other symbols are parameters. Pieces are sympy
    expressions or, all of them with every parameter named by a string, text; text pieces
    must write each shared end the same way in both pieces.

    >>> step = Activation("step", (Piece("-oo", "0", "0"), Piece("0", "oo", "1")))
    >>> step.breakpoints
    (0,)
    >>> import sympy as sp
    >>> from meanfield.activations import x
    >>> Activation("step", (Piece(-sp.oo, 0, sp.Integer(0)), Piece(0, sp.oo, sp.Integer(1)))) == step
    True
    """

    name: str
    pieces: tuple[Piece, ...] = _PiecesField()
    parameters: tuple[Parameter, ...] = ()
    description: str = field(default="", compare=False)
    #: how a target sparsity sets the threshold (None: the activation is parametrised
    #: directly); see :class:`SparsityRule`
    sparsity_rule: SparsityRule | None = field(default=None, compare=False)
    #: the name shown in tables and figures (default: ``name``)
    label: str = field(default="", compare=False)

    def __post_init__(self):
        given = self.__dict__["_given"]
        if not given:
            raise ValueError("an activation needs at least one piece")
        if not all(isinstance(p, Piece) for p in given):
            raise ValueError("the pieces must be Piece(lower, upper, poly)")
        text = all(p.is_text() for p in given) and all(isinstance(p.symbol, str) for p in self.parameters)
        self.__dict__["_text"] = text
        if text:
            self._check_text(given)
        else:
            self.__dict__["_sympy"] = self._read_pieces(given)
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

    def _check_text(self, given):
        sample = {p.name: 1.25 + 0.5 * i for i, p in enumerate(self.parameters)}  # any valid-looking values
        if given[0].lower.strip() != "-oo" or given[-1].upper.strip() not in ("oo", "+oo"):
            raise ValueError("the pieces must start at -oo and end at +oo")
        for a, b in zip(given, given[1:]):
            if a.upper.replace(" ", "") != b.lower.replace(" ", ""):
                raise ValueError(f"piece ends {a.upper!r} and {b.lower!r} do not meet (text pieces write a "
                                 "shared end the same way)")
        names = {p.name for p in self.parameters}
        for p in given:
            for text, allow_x in ((p.poly, True), (p.lower, False), (p.upper, False)):
                try:
                    tree = _parse(text)  # the structure, whatever the values
                    for node in ast.walk(tree):
                        if isinstance(node, ast.Name) and node.id not in names | ({"x"} if allow_x else set()) | {"oo"}:
                            raise ValueError(f"{text!r} uses {node.id!r}, which is not "
                                             + ("x or " if allow_x else "") + "a parameter")
                    _evaluate_text(text, sample, allow_x)  # a polynomial in x, real
                except _Undefined:  # at the sample values only: checked again at each use
                    continue
                except ValueError as exc:
                    raise ValueError(f"activation {self.name!r}: {exc}") from None

    def _read_pieces(self, given):
        """The pieces as sympy expressions, checked."""
        sp = _sympy()
        x = __getattr__("x")
        names = {"x": x, **{p.name: p.sympy_symbol for p in self.parameters}}
        pieces = tuple(Piece(*(_text_to_sympy(e, names) if isinstance(e, str) else sp.sympify(e)
                               for e in (p.lower, p.upper, p.poly))) for p in given)
        if pieces[0].lower != -sp.oo or pieces[-1].upper != sp.oo:
            raise ValueError("the pieces must start at -oo and end at +oo")
        for a, b in zip(pieces, pieces[1:]):
            if sp.simplify(a.upper - b.lower) != 0:
                raise ValueError(f"piece ends {a.upper} and {b.lower} do not meet")
        allowed = {x} | set(names.values())
        for p in pieces:
            if not p.poly.is_polynomial(x):
                raise ValueError(f"{p.poly} is not a polynomial in x")
            for e in (p.lower, p.upper, p.poly):
                extra = e.free_symbols - allowed
                if extra:
                    raise ValueError(f"{e} uses symbols {extra} that are not parameters")
            if p.lower.has(x) or p.upper.has(x):
                raise ValueError("breakpoints may not depend on x")
        return pieces

    def _sympy_pieces(self):
        if "_sympy" not in self.__dict__:
            self.__dict__["_sympy"] = self._read_pieces(self.__dict__["_given"])
        return self.__dict__["_sympy"]

    # -- identity ----------------------------------------------------------------------
    @property
    def definition(self) -> tuple:
        """What defines the activation's mathematics, as text (the derivation store's key is
        made from it): the pieces as written (text) or sympy's ``srepr`` of them, and the
        parameters' names and ranges or symbols."""
        if self.__dict__["_text"]:
            return ("text", tuple((p.lower.strip(), p.upper.strip(), p.poly.strip()) for p in self.__dict__["_given"]),
                    tuple((p.name, p.lower, p.upper, p.lower_open, p.upper_open) for p in self.parameters))
        sp = _sympy()
        return ("sympy", tuple(tuple(sp.srepr(e) for e in (p.lower, p.upper, p.poly)) for p in self.pieces),
                tuple(sp.srepr(s) for s in self.symbols))

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, Activation):
            return NotImplemented
        ranges = [tuple((p.name, p.lower, p.upper, p.lower_open, p.upper_open, p.default) for p in a.parameters)
                  for a in (self, other)]
        if self.name != other.name or ranges[0] != ranges[1]:
            return False
        if self.__dict__["_text"] == other.__dict__["_text"] and self.definition == other.definition:
            return True
        try:  # written differently: ask sympy
            return self.pieces == other.pieces and self.symbols == other.symbols
        except ValueError:  # one's pieces do not read as an activation: not the other
            return False

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):  # the pieces as given: reading text pieces would import sympy
        pieces = ", ".join(f"Piece({p.lower!r}, {p.upper!r}, {p.poly!r})" if p.is_text() else repr(p)
                           for p in self.__dict__["_given"])
        return (f"Activation({self.name!r}, ({pieces},), {self.parameters!r}, "
                f"sparsity_rule={self.sparsity_rule!r}, label={self.label!r})")

    @property
    def has_zero_piece(self) -> bool:
        """Whether phi is exactly 0 on some piece: without one its sparsity is 0 (a hidden
        unit is 0 only on a null set)."""
        return any(p.poly == 0 for p in self.pieces)

    # -- structure -------------------------------------------------------------------
    @property
    def symbols(self) -> tuple:
        """The parameters' sympy Symbols, in order."""
        return tuple(p.sympy_symbol for p in self.parameters)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def breakpoints(self) -> tuple:
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
        try:
            bps = [lo for lo, _, _ in self._numeric_ends(out)[1:]]
        except ValueError as exc:  # text with no finite value at these parameters
            raise ParameterError(f"activation {self.name!r}: {exc}") from None
        if any(b2 < b1 for b1, b2 in zip(bps, bps[1:])):
            raise ParameterError(f"{self.name}: parameters {out} give unordered breakpoints {bps}")
        return out

    # -- numpy evaluation ------------------------------------------------------------
    def _numeric_ends(self, values: dict, derivative: bool = False):
        """[(lower, upper, coefficients, highest degree first)] at float parameter values."""
        floats = {k: float(v) for k, v in values.items()}
        if self.__dict__["_text"]:
            out = []
            for p in self.__dict__["_given"]:
                c = _evaluate_text(p.poly, floats, allow_x=True).c
                if derivative:
                    c = [k * ck for k, ck in enumerate(c)][1:]
                out.append((_evaluate_text(p.lower, floats, False).c[0], _evaluate_text(p.upper, floats, False).c[0],
                            c[::-1] or [0.0]))
            return out
        args = [floats[p.name] for p in self.parameters]
        return [(lo(*args), hi(*args), coeffs(*args)) for lo, hi, coeffs in _piece_functions(self, derivative)]

    def numeric_pieces(self, derivative: bool = False, **values):
        """[(lower, upper, numpy.poly1d)] with the parameters substituted (floats)."""
        values = self.parameter_values(**values)
        return [(lo, hi, np.poly1d(c)) for lo, hi, c in self._numeric_ends(values, derivative)]

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
    """Per piece of a sympy activation: compiled (lower end, upper end, coefficient list,
    highest degree first) of the parameters."""
    sp = _sympy()
    x = __getattr__("x")
    out = []
    for p in activation.pieces:
        poly = sp.diff(p.poly, x) if derivative else p.poly
        coeffs = sp.Poly(poly, x).all_coeffs()
        out.append(tuple(sp.lambdify(activation.symbols, e, modules="math")
                         for e in (p.lower, p.upper, coeffs)))
    return out


# The built-ins are text, so that evaluating them needs no sympy.
_TAU = Parameter("tau", 0.0, default=0.0)
_M = Parameter("m", 0.0, lower_open=True)

RELU = Activation(
    "relu0",
    (Piece("-oo", "0", "0"), Piece("0", "oo", "x")),
    description="ReLU max(x, 0)",
    label="ReLU",
)
RELU_TAU = Activation(
    "relu",
    (Piece("-oo", "tau", "0"), Piece("tau", "oo", "x - tau")),
    (_TAU,),
    description="shifted ReLU max(x - tau, 0)",
    sparsity_rule=SparsityRule(),
    label="ReLU_tau",
)
ST = Activation(
    "st",
    (Piece("-oo", "-tau", "x + tau"), Piece("-tau", "tau", "0"), Piece("tau", "oo", "x - tau")),
    (_TAU,),
    description="soft threshold sign(x) max(|x| - tau, 0)",
    sparsity_rule=SparsityRule(symmetric=True),
    label="ST_tau",
)
CRELU = Activation(
    "crelu",
    (Piece("-oo", "tau", "0"), Piece("tau", "tau + m", "x - tau"), Piece("tau + m", "oo", "m")),
    (_TAU, _M),
    description="clipped shifted ReLU min(max(x - tau, 0), m)",
    sparsity_rule=SparsityRule(clip="m"),
    label="CReLU",
)
CST = Activation(
    "cst",
    (
        Piece("-oo", "-tau - m", "-m"),
        Piece("-tau - m", "-tau", "x + tau"),
        Piece("-tau", "tau", "0"),
        Piece("tau", "tau + m", "x - tau"),
        Piece("tau + m", "oo", "m"),
    ),
    (_TAU, _M),
    description="clipped soft threshold sign(x) min(max(|x| - tau, 0), m)",
    sparsity_rule=SparsityRule(symmetric=True, clip="m"),
    label="CST",
)
HARD_TANH = Activation(
    "hard_tanh",
    (Piece("-oo", "-1", "-1"), Piece("-1", "1", "x"), Piece("1", "oo", "1")),
    description="hard tanh max(-1, min(x, 1))",
    label="hard tanh",
)
LEAKY_RELU = Activation(
    "leaky_relu",
    (Piece("-oo", "0", "alpha*x"), Piece("0", "oo", "x")),
    (Parameter("alpha", -1.0, 1.0, default="0.01"),),
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

    >>> half = Activation("half_relu", (Piece("-oo", "tau", "0"), Piece("tau", "oo", "(x - tau)/2")),
    ...                   (Parameter("tau", 0.0, default=0.0),), sparsity_rule=SparsityRule())
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
