"""``verify``: put one activation through the property checks of meanfield's own suite, with
hypothesis choosing the parameters, and report each property.

The properties, for an initialisation ``(phi, sigma_w^2, sigma_b^2)`` drawn by hypothesis
(the activation's parameters within their ranges, q from 1e-3 to 1e3):

- ``V against quadrature``, ``chi_1 against quadrature``, ``sparsity against quadrature``:
  the closed forms (:func:`meanfield.maps.map_values`) against ``mpmath.quad`` of
  :math:`E[\\phi(\\sqrt q z)^2]`, :math:`E[\\phi'(\\sqrt q z)^2]` and :math:`P(\\phi=0)`,
  split at the breakpoints, with each piece's polynomial evaluated numerically (never the
  symbolic integrals the closed forms come from);
- ``V' and V'' against d/dq of V``: the boundary terms of kinks and clips checked by
  differentiating the closed form of V numerically (``mpmath.diff``) at high precision;
- ``V' by Stein's lemma``: for a continuous phi,
  :math:`V'(q)=\\sigma_w^2 E[\\phi(\\sqrt q z)\\phi'(\\sqrt q z)z]/\\sqrt q` by quadrature
  (differentiation under the integral); skipped for a phi with jumps;
- ``scale invariance``: where every piece is homogeneous of degree 1 in x and the
  length parameters (those in a breakpoint; every built-in but hard tanh),
  :math:`V(\\lambda^2 q)` at lengths :math:`\\lambda p` and bias :math:`\\lambda^2\\sigma_b^2` is :math:`\\lambda^2 V(q)`;
- ``fixed points``: every fixed point reported satisfies :math:`V(q)=q`, and a dense
  float64 scan of :math:`V(q)-q` over the searched range changes sign only within the
  resolution of a reported point;
- ``correlation map at c = 1``: :math:`\\rho(1)=1` and :math:`\\rho'(1)=\\chi_1(q^*)` at
  the stable or half-stable fixed point (when V has one).

A failure is shrunk by hypothesis to a small counterexample, which the report gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import time

import mpmath
import numpy as np

#: Seconds hypothesis may spend shrinking a property's counterexample.
SHRINK_SECONDS = 10.0

__all__ = ["verify", "VerifyReport", "PropertyResult", "quadrature_maps", "PROPERTIES"]

PROPERTIES = ("V against quadrature", "chi_1 against quadrature", "sparsity against quadrature",
              "V' and V'' against d/dq of V", "V' by Stein's lemma", "scale invariance", "fixed points",
              "correlation map at c = 1")


@dataclass(frozen=True)
class PropertyResult:
    """One property: how many examples were tried, the largest error seen (relative to the
    quantity's natural scale) and, when it failed, the shrunk counterexample."""

    name: str
    examples: int
    largest_error: float
    passed: bool
    counterexample: str | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    activation: str
    digits: int
    results: tuple[PropertyResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)

    def summary(self) -> str:
        lines = [f"verify {self.activation} ({self.digits} digits):"]
        for r in self.results:
            if r.skipped:
                lines.append(f"  {r.name:32s} skipped: {r.skipped}")
                continue
            state = "pass" if r.passed else "FAIL"
            lines.append(f"  {r.name:32s} {state}  {r.examples:3d} examples, largest error {r.largest_error:.2e}")
            if r.counterexample:
                lines.append(f"      counterexample: {r.counterexample}")
        lines.append("all properties hold" if self.passed else "a property FAILED")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"VerifyReport(activation={self.activation}, passed={self.passed}, "
                f"failed={[r.name for r in self.results if not r.passed]})")


# -- the independent reference ----------------------------------------------------------
def quadrature_maps(activation, params: dict, q, dps: int):
    """(E[phi^2], E[phi'^2], P(phi = 0)) at ``q`` by mpmath.quad over each piece, in
    z = x / sqrt(q), each piece's polynomial (and its derivative) evaluated as numbers."""
    with mpmath.workdps(dps):
        sq = mpmath.sqrt(mpmath.mpf(q))
        e2 = ed2 = zero = mpmath.mpf(0)
        for lo, hi, coeffs, dcoeffs in _pieces_numeric(activation, params, dps):
            a, b = lo / sq, hi / sq
            if not a < b:
                continue
            points = [a] + [t for t in (-8, -4, -1, 0, 1, 4, 8) if a < t < b] + [b]
            if all(c == 0 for c in coeffs):
                zero += mpmath.ncdf(b) - mpmath.ncdf(a)
                continue
            e2 += mpmath.quad(lambda z: mpmath.polyval(coeffs, sq * z) ** 2 * mpmath.npdf(z), points)
            ed2 += mpmath.quad(lambda z: mpmath.polyval(dcoeffs, sq * z) ** 2 * mpmath.npdf(z), points)
        return e2, ed2, zero


# -- the properties ----------------------------------------------------------------------
def _relative(value, want, scale) -> float:
    return float(abs(mpmath.mpf(value) - want) / max(abs(mpmath.mpf(scale)), mpmath.mpf(10) ** -200))


def verify(activation, *, params: dict | None = None, examples: int = 20, digits: int = 20,
           seed: int | None = 0, properties=PROPERTIES) -> VerifyReport:
    """Check ``activation`` (a name or an :class:`~meanfield.activations.Activation`)
    against :data:`PROPERTIES`, each over ``examples`` hypothesis examples, to ``digits``
    significant digits (needs hypothesis: ``pip install 'meanfield[test]'``). ``params``:
    the activation's parameters, fixed (default: drawn within their ranges); ``seed``:
    None draws afresh each call, an integer repeats the same examples.

    >>> report = verify("crelu", examples=3, digits=15)
    >>> report.passed, [r.name for r in report.results][:2]
    (True, ['V against quadrature', 'chi_1 against quadrature'])
    """
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from meanfield.activations import get_activation
    from meanfield.maps import Initialisation, map_values

    from .strategies import initialisations

    from meanfield import validation
    act = get_activation(activation)
    validation.integer("examples", examples, 1, 100_000)
    validation.digits(digits, maximum=100)
    if params is not None:
        params = {k: float(v) for k, v in act.parameter_values(**params).items()}
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        from meanfield.errors import ParameterError
        raise ParameterError(f"properties {unknown} unknown: choose from {', '.join(PROPERTIES)}")
    tol = 10.0 ** (2 - digits)
    config = settings(max_examples=examples, deadline=None, database=None, derandomize=seed is not None,
                      suppress_health_check=list(HealthCheck), print_blob=False,
                      phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])  # no explain phase
    q_st = st.floats(-3, 3).map(lambda e: 10.0 ** e)
    dps = digits + 15

    def run(name, check, strategy):
        errors, last_failure = [0.0], {}

        @config
        @given(strategy)
        def prop(case):
            # shrinking gets SHRINK_SECONDS: past them every new candidate passes untried,
            # so hypothesis ends with the smallest counterexample found by then (and its
            # replay of that one fails again, as it must)
            since = last_failure.get("at")
            if since is not None and time.monotonic() - since > SHRINK_SECONDS and case != last_failure["case"]:
                return
            try:
                with mpmath.workdps(dps):  # every comparison at the reference's precision
                    err = check(case)
            except AssertionError as exc:
                last_failure["case"], last_failure["why"] = case, str(exc)
                last_failure.setdefault("at", time.monotonic())
                raise
            except Exception as exc:  # the library raised where it should have answered
                last_failure["case"], last_failure["why"] = case, f"{type(exc).__name__}: {exc}"
                last_failure.setdefault("at", time.monotonic())
                raise AssertionError(last_failure["why"]) from None
            errors.append(err)
            if not err <= tol:
                last_failure["case"], last_failure["why"] = case, f"error {err:.3e} > {tol:.1e}"
                last_failure.setdefault("at", time.monotonic())
                raise AssertionError(last_failure["why"])

        try:
            prop()
        except Exception:  # AssertionError, or hypothesis' group of several distinct failures
            case = last_failure.get("case")
            return PropertyResult(name, examples, max(errors), False,
                                  f"{_show(case)}: {last_failure.get('why', '')}")
        return PropertyResult(name, examples, max(errors), True)

    inits = initialisations(act, params)
    cases = st.tuples(inits, q_st)
    results = []

    def maps_at(case):
        (params, sw, sb), q = case
        got = map_values(Initialisation(act, sw, sb, params=params), q, digits=digits + 5)
        e2, ed2, zero = quadrature_maps(act, params, q, dps)
        return got, e2, ed2, zero, sw, sb, q

    checks = {
        "V against quadrature": lambda c: (lambda g, e2, ed2, z, sw, sb, q: _relative(
            g.variance, sb + sw * e2, sb + sw * max(e2, mpmath.mpf(q) * 1e-30)))(*maps_at(c)),
        "chi_1 against quadrature": lambda c: (lambda g, e2, ed2, z, sw, sb, q: _relative(
            g.chi1, sw * ed2, sw * max(ed2, mpmath.mpf(1e-30))))(*maps_at(c)),
        "sparsity against quadrature": lambda c: (lambda g, e2, ed2, z, sw, sb, q: _relative(
            g.sparsity, z, 1))(*maps_at(c)),
        "V' and V'' against d/dq of V": lambda c: _derivatives(act, c, digits),
    }
    continuous, homogeneous = _continuous(act), _homogeneous(act)
    for name in properties:
        if name in checks:
            results.append(run(name, checks[name], cases))
        elif name == "V' by Stein's lemma":
            results.append(run(name, lambda c: _stein(act, c, dps), cases) if continuous else
                           PropertyResult(name, 0, 0.0, True, skipped="phi has jumps (the lemma gains jump terms)"))
        elif name == "scale invariance":
            results.append(run(name, lambda c: _scaling(act, c, digits), st.tuples(cases, st.floats(0.1, 10)))
                           if homogeneous else
                           PropertyResult(name, 0, 0.0, True, skipped="phi is not homogeneous in x and its parameters"))
        elif name == "fixed points":
            results.append(run(name, lambda c: _fixed_points(act, c, digits), inits))
        elif name == "correlation map at c = 1":
            results.append(_correlation_property(act, run, digits, inits))
    return VerifyReport(act.name, digits, tuple(results))


def _show(case) -> str:
    if case is None:
        return "(none recorded)"
    if len(case) == 2 and isinstance(case[0], tuple) and isinstance(case[0][0], tuple):  # (case, lambda)
        return _show(case[0]) + f", lambda = {case[1]!r}"
    (params, sw, sb), *rest = case if isinstance(case[0], tuple) else (case,)
    text = ", ".join(f"{k} = {v!r}" for k, v in params.items())
    text += (", " if text else "") + f"sigma_w2 = {sw!r}, sigma_b2 = {sb!r}"
    return text + (f", q = {rest[0]!r}" if rest else "")


def _derivatives(act, case, digits):
    from meanfield.maps import Initialisation, map_values
    (params, sw, sb), q = case
    init = Initialisation(act, sw, sb, params=params)
    got = map_values(init, q, digits=digits + 5)
    with mpmath.workdps(2 * digits + 20):
        def v(t):
            return map_values(init, t, digits=2 * digits + 10).variance
        qm = mpmath.mpf(q)
        h = qm * mpmath.mpf(10) ** (-(digits // 2 + 4))
        d1 = mpmath.diff(v, qm, 1, h=h)
        d2 = mpmath.diff(v, qm, 2, h=h)
        scale = (sb + sw * abs(v(qm) - sb) / sw) / qm if sw else 1
        e1 = _relative(got.v_prime, d1, max(abs(d1), scale))
        e2 = _relative(got.v_second, d2, max(abs(d2), scale / qm))
    return max(e1, e2 * 10 ** -(digits // 4))  # V'' by a second difference carries fewer digits


def _fixed_points(act, init_case, digits):
    from meanfield.errors import NoSolutionError
    from meanfield.fixed_points import fixed_points
    from meanfield.maps import Initialisation, map_values, map_values_float64
    params, sw, sb = init_case
    init = Initialisation(act, sw, sb, params=params)
    try:
        report = fixed_points(init, digits=digits)
    except NoSolutionError:
        return 0.0
    worst = 0.0
    for p in report.points:
        v = map_values(init, p.q, digits=digits + 5).variance
        worst = max(worst, _relative(v, p.q, p.q))
    if report.degenerate:
        return worst
    lo, hi = report.search_range
    grid = np.geomspace(max(lo, 1e-90), hi, 4000)
    with np.errstate(all="ignore"):
        gap = map_values_float64(init, grid).variance - grid
    sign = np.sign(gap)
    noise = 1e-9 * np.maximum(grid, 1)
    decided = np.abs(gap) > noise
    idx = np.nonzero(decided)[0]
    flips = [(grid[a], grid[b]) for a, b in zip(idx, idx[1:]) if sign[a] != sign[b]]
    known = [float(p.q) for p in report.points] + [x for r in report.unresolved for x in r]
    for a, b in flips:
        if not any(a * 0.999 <= k <= b * 1.001 for k in known):
            raise AssertionError(f"V(q) - q changes sign in [{a:.6g}, {b:.6g}], where no fixed point is reported")
    return worst


def _correlation_property(act, run, digits, inits):
    from meanfield.correlation import correlation_map
    from meanfield.errors import NoSolutionError
    from meanfield.fixed_points import fixed_points
    from meanfield.maps import Initialisation, map_values

    def check(init_case):
        params, sw, sb = init_case
        init = Initialisation(act, sw, sb, params=params)
        try:
            points = [p for p in fixed_points(init, digits=digits).points if p.kind != "unstable"]
        except NoSolutionError:
            return 0.0
        if not points:
            return 0.0
        q_star = points[0].q
        values = correlation_map(init, 1, q_star=q_star, digits=digits)
        chi1 = map_values(init, q_star, digits=digits + 5).chi1
        rho, slope = values.rho, values.rho_prime
        if not mpmath.isfinite(slope):
            return _relative(rho, 1, 1)
        return max(_relative(rho, 1, 1), _relative(slope, chi1, max(abs(chi1), 1)))

    return run("correlation map at c = 1", check, inits)


def _pieces_numeric(act, params, dps):
    """[(lo, hi, coefficients of phi, of phi')] at the parameters' exact values."""
    import sympy as sp
    from meanfield.activations import x
    values = {s: sp.Rational(params[s.name]) if isinstance(params[s.name], float) else sp.sympify(params[s.name])
              for s in act.symbols}

    def number(expr):
        expr = sp.sympify(expr).subs(values)
        if expr in (sp.oo, -sp.oo):
            return mpmath.inf if expr > 0 else -mpmath.inf
        return mpmath.mpf(str(sp.N(expr, dps + 10)))

    out = []
    for piece in act.pieces:
        poly = sp.Poly(sp.sympify(piece.poly).subs(values), x)
        out.append((number(piece.lower), number(piece.upper), [number(c) for c in poly.all_coeffs()],
                    [number(c) for c in poly.diff(x).all_coeffs()]))
    return out


def _continuous(act) -> bool:
    """Whether phi has no jump at any breakpoint (whatever the parameters)."""
    import sympy as sp
    from meanfield.activations import x
    for left, right in zip(act.pieces, act.pieces[1:]):
        b = left.upper
        if sp.simplify(sp.sympify(left.poly).subs(x, b) - sp.sympify(right.poly).subs(x, b)) != 0:
            return False
    return True


def _lengths(act) -> set:
    """The parameters that are lengths: those in a breakpoint (tau, m); the others (a
    slope such as leaky ReLU's alpha) do not scale with x."""
    import sympy as sp
    return {s.name for piece in act.pieces for end in (piece.lower, piece.upper)
            for s in sp.sympify(end).free_symbols}


def _homogeneous(act) -> bool:
    """Whether phi(lambda x; lambda p) = lambda phi(x; p) piece by piece (bounds included),
    p the length parameters."""
    import sympy as sp
    from meanfield.activations import x
    lam = sp.Symbol("lambda_", positive=True)
    lengths = _lengths(act)
    scale = {x: lam * x, **{s: lam * s for s in act.symbols if s.name in lengths}}
    for piece in act.pieces:
        if sp.simplify(sp.sympify(piece.poly).subs(scale, simultaneous=True) - lam * piece.poly) != 0:
            return False
        for end in (piece.lower, piece.upper):
            end = sp.sympify(end)
            if end.is_finite and sp.simplify(end.subs(scale, simultaneous=True) - lam * end) != 0:
                return False
    return True


def _stein(act, case, dps):
    from meanfield.maps import Initialisation, map_values
    (params, sw, sb), q = case
    got = map_values(Initialisation(act, sw, sb, params=params), q, digits=dps - 10).v_prime
    sq = mpmath.sqrt(mpmath.mpf(q))
    total = size = mpmath.mpf(0)
    for lo, hi, c, dc in _pieces_numeric(act, params, dps):
        a, b = lo / sq, hi / sq
        if not a < b or all(v == 0 for v in c) or all(v == 0 for v in dc):
            continue
        points = [a] + [t for t in (-8, -4, -1, 0, 1, 4, 8) if a < t < b] + [b]
        f = lambda z: mpmath.polyval(c, sq * z) * mpmath.polyval(dc, sq * z) * z * mpmath.npdf(z)  # noqa: E731
        total += mpmath.quad(f, points)
        size += mpmath.quad(lambda z: abs(f(z)), points)
    want = mpmath.mpf(sw) * total / sq
    return _relative(got, want, max(abs(want), mpmath.mpf(sw) * size / sq, mpmath.mpf(10) ** (5 - dps)))


def _scaling(act, case, digits):
    from meanfield.maps import Initialisation, map_values
    ((params, sw, sb), q), lam = case
    lam = mpmath.mpf(lam)
    lengths = _lengths(act)
    scaled = {k: mpmath.mpf(v) * lam if k in lengths else v for k, v in params.items()}
    base = map_values(Initialisation(act, sw, sb, params=params), q, digits=digits + 5).variance
    big = map_values(Initialisation(act, sw, mpmath.mpf(sb) * lam**2, params=scaled), mpmath.mpf(q) * lam**2,
                     digits=digits + 5).variance
    return _relative(big, lam**2 * base, lam**2 * base)
