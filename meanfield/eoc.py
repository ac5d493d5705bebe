r"""Edge-of-chaos initialisation for a target sparsity.

Given a fixed point :math:`q^*` and activation parameters, the edge of chaos (EoC) is
:math:`\chi_1(q^*)=1` together with :math:`V(q^*)=q^*` (Schoenholz et al. 2017), so

.. math::

    \sigma_w^2 = 1 / E[\phi'(\sqrt{q^*}z)^2],\qquad
    \sigma_b^2 = q^* - \sigma_w^2 E[\phi(\sqrt{q^*}z)^2] \;(\ge 0 \text{ required}).

For the four activations of Price et al. (2024, section 4) the threshold comes from the
target sparsity :math:`s`: :math:`\tau=\sqrt{q^*}\,\Phi^{-1}(s)` for ReLU_tau and CReLU
(:math:`s\in[1/2,1)`), :math:`\tau=\sqrt{q^*}\,\Phi^{-1}((1+s)/2)` for ST_tau and CST
(:math:`s\in[0,1)`). For the clipped ones :math:`m` is given, or solved from a target
:math:`V'(q^*)\in(0,1)`: on the EoC :math:`V'(q^*)=1-\sigma_w^2\,k\,(m/\sqrt{q^*})
\varphi((\tau+m)/\sqrt{q^*})` (:math:`k=1` CReLU, 2 CST; Price et al. 2024, eq. for the
clipped :math:`V'`), which increases from 0 to 1 as :math:`m` goes from 0 to infinity, so
the root is unique and found by bracketing. For ReLU_tau and ST_tau,
:math:`V'(q^*)=\chi_1(q^*)=1`: the fixed point is half-stable (their Lemma 1).

>>> sol = eoc_parameters("crelu", sparsity="0.85", v_prime="0.5", digits=20)
>>> mpmath.nstr(sol.m, 4), [p.kind for p in sol.fixed_points.points]   # paper: m = 0.81
('0.8095', ['stable'])
>>> sol = eoc_parameters("relu", sparsity="0.7")
>>> [(p.kind, p.attracts_from) for p in sol.fixed_points.points], sol.fixed_points.large_q
([('half-stable', 'below')], 'diverges')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mpmath

from . import validation
from ._display import Displayed
from ._roots import bracketed_root
from ._types import ActivationLike, Context, Real
from .activations import by_sparsity, get_activation
from .errors import NoSolutionError, ParameterError
from .fixed_points import FixedPointReport, fixed_points
from .maps import (
    DEFAULT_DIGITS,
    GUARD_DIGITS,
    Initialisation,
    cancellation_digits,
    check_digits,
    check_q,
    compiled,
    format_value,
    to_mpf,
)

__all__ = ["EoCSolution", "eoc_parameters", "eoc_weights", "check_request"]

@dataclass(frozen=True, repr=False)
class EoCSolution(Displayed):
    """An edge-of-chaos initialisation and what the theory says of it (mpf values).

    >>> eoc_parameters("crelu", "0.85", v_prime="0.7", digits=10)
    EoCSolution(activation=crelu, sparsity=0.85, q_star=1, tau=1.03643, m=1.17037, sigma_w2=7.33482, sigma_b2=0.595341, v_prime=0.7, kind=stable)
    """

    init: Initialisation
    q_star: Any
    tau: Any
    m: Any  # None for unclipped activations
    sigma_w2: Any
    sigma_b2: Any
    sparsity: Any
    chi1: Any
    v_prime: Any
    v_second: Any
    fixed_points: FixedPointReport
    digits: int

    def _headline(self):
        p = self.q_star_point
        out = [("activation", self.init.activation.name), ("sparsity", self.sparsity), ("q_star", self.q_star),
               ("tau", self.tau)]
        out += [("m", self.m)] if self.m is not None else []
        return out + [("sigma_w2", self.sigma_w2), ("sigma_b2", self.sigma_b2), ("v_prime", self.v_prime),
                      ("kind", p.kind if p is not None else "every q is fixed")]

    def _tidy_rows(self):
        return [dict(self._headline(), v_second=self.v_second, chi1=self.chi1, digits=self.digits)]

    @property
    def q_star_point(self):
        """The entry of ``fixed_points.points`` that is q* itself (None if every q is fixed)."""
        if not self.fixed_points.points:
            return None
        return min(self.fixed_points.points, key=lambda p: abs(p.q - self.q_star))

    def to_dict(self, digits: int | None = None) -> dict:
        """The solution as plain data (what ``meanfield eoc --json`` prints): numbers as
        decimal strings of ``digits`` significant digits (default: the solution's), and
        the fixed-point report's entries.

        >>> d = eoc_parameters("relu", sparsity="0.7", digits=10).to_dict()
        >>> d["sigma_w2"], d["m"], d["fixed_points"][0]["kind"]
        ('3.333333333', None, 'half-stable')
        """
        d = self.digits if digits is None else digits
        values = {k: format_value(getattr(self, k), d) for k in
                  ("q_star", "tau", "m", "sigma_w2", "sigma_b2", "chi1", "v_prime", "v_second", "sparsity")}
        return {"activation": self.init.activation.name, **values, **self.fixed_points.to_dict(d)}

    def at_digits(self, digits: int, ctx: Context = mpmath.mp) -> "EoCSolution":
        """This solution if it carries ``digits``, else the EoC solved again at ``digits`` with
        the same activation parameters (so chi_1(q*) = 1 holds to the new digits), in the
        mpmath context ``ctx``."""
        if digits <= self.digits:
            return self
        return eoc_parameters(self.init.activation, q_star=self.q_star, digits=digits, ctx=ctx,
                              **self.init.parameters)


def eoc_weights(activation: ActivationLike, q_star: Real, params: dict,
                ctx: Context = mpmath.mp) -> tuple[mpmath.mpf, mpmath.mpf]:
    """(sigma_w2, sigma_b2) putting q* on the EoC, at the context's working precision.

    Raises :class:`~meanfield.errors.NoSolutionError` when sigma_b2 would be negative.
    """
    act = get_activation(activation)
    fns = compiled(act).mp.context(ctx)
    q = to_mpf(q_star, ctx)
    values = act.parameter_values(**params)
    p = [to_mpf(values[name], ctx) for name in act.parameter_names]
    e_dphi2 = fns["e_dphi2"](q, 1, 0, *p)
    if not e_dphi2 > 0:
        raise NoSolutionError(f"{act.name}: phi' vanishes almost surely at q_star = {q_star}; no EoC exists")
    sigma_w2 = 1 / e_dphi2
    sigma_b2 = q - sigma_w2 * fns["e_phi2"](q, 1, 0, *p)
    if abs(sigma_b2) <= 64 * ctx.eps * q:
        sigma_b2 = ctx.zero
    if sigma_b2 < 0:
        raise NoSolutionError(
            f"sigma_b2 = {mpmath.nstr(sigma_b2, 6)} < 0: no edge-of-chaos initialisation of {act.name} "
            f"with q_star = {q_star} and {values} (sigma_b2 must be >= 0)")
    return sigma_w2, sigma_b2


def _clip_for_v_prime(act, q, tau, target, ctx):
    """m with V'(q*) = target on the EoC (V'(q*) increases in m from 0 to 1); the
    activation's sparsity rule names its threshold and clip parameters, and any other
    parameter takes its default."""
    fns = compiled(act).mp.context(ctx)
    rule = act.sparsity_rule
    fixed = act.parameter_values(**{rule.threshold: 0, rule.clip: 1})  # the others' defaults

    def args(m):
        value = {**{k: to_mpf(v, ctx) for k, v in fixed.items()}, rule.threshold: tau, rule.clip: m}
        return [value[p.name] for p in act.parameters]

    def v_prime_minus_target(m):
        sigma_w2 = 1 / fns["e_dphi2"](q, 1, 0, *args(m))
        return fns["v_prime"](q, sigma_w2, 0, *args(m)) - target

    lo = hi = ctx.sqrt(q)
    g_lo = g_hi = v_prime_minus_target(lo)
    for _ in range(400):  # bounded expansion: m spans 2^-400 .. 2^400 sqrt(q*)
        if g_lo < 0 < g_hi:
            break
        if g_lo >= 0:
            hi, g_hi = lo, g_lo
            lo = lo / 2
            g_lo = v_prime_minus_target(lo)
        if g_hi <= 0:
            lo, g_lo = hi, g_hi
            hi = hi * 2
            g_hi = v_prime_minus_target(hi)
    else:
        raise NoSolutionError(f"v_prime = {target}: no clip level m found in [2^-400, 2^400] sqrt(q*)")
    return bracketed_root(v_prime_minus_target, lo, hi, g_lo, g_hi, ctx)


def check_request(activation, sparsity, *, clip=None, v_prime=None):
    """The activation of an EoC request by target sparsity, once the request is checked:
    the activation has a sparsity rule, ``sparsity`` is in [its lowest, 1), and a clipped
    activation has exactly one of ``clip`` (> 0) and ``v_prime`` (in (0, 1)), an unclipped
    one neither. The one check of such a request (the EoC solve, tables, training).

    >>> check_request("crelu", "0.85", v_prime="0.7").name
    'crelu'
    >>> check_request("relu", "0.3")
    Traceback (most recent call last):
    ...
    meanfield.errors.ParameterError: sparsity = 0.3 is out of range: must be in [0.5, 1)
    """
    act = get_activation(activation)
    rule = act.sparsity_rule
    if rule is None:
        raise ParameterError(
            f"sparsity sets the threshold only for an activation with a sparsity rule (the built-ins "
            f"{', '.join(by_sparsity())}, or your own with sparsity_rule=); {act.name!r} has none: "
            "give its parameters instead")
    validation.interval("sparsity", sparsity, rule.lowest, 1.0, lo_closed=True)
    if not rule.clipped:
        if clip is not None or v_prime is not None:
            clipped = ", ".join(k for k, a in by_sparsity().items() if a.sparsity_rule.clipped)
            raise ParameterError(f"{act.name} is not clipped: clip and v_prime go with a clipped activation "
                                 f"({clipped})")
        return act
    if (clip is None) == (v_prime is None):
        raise ParameterError(f"{act.name} needs exactly one of clip ({rule.clip} > 0) or v_prime (in (0, 1))")
    if clip is not None:
        validation.real("clip", clip, "> 0")
        if not float(clip) > 0:
            raise ParameterError(f"clip = {clip} is out of range: must be > 0 (finite)")
    else:
        validation.interval("v_prime", v_prime, 0.0, 1.0)
    return act


def _eoc_initialisation(act, sparsity, q_star, clip, v_prime, params, ctx) -> Initialisation:
    """The EoC Initialisation at the context's working precision (see eoc_parameters)."""
    q = to_mpf(q_star, ctx)
    if sparsity is not None:
        check_request(act, sparsity, clip=clip, v_prime=v_prime)
        if params:
            raise ParameterError(f"give sparsity (and clip or v_prime), not {', '.join(sorted(params))}")
        rule = act.sparsity_rule
        s = to_mpf(sparsity, ctx)
        tau = ctx.sqrt(q) * ctx.sqrt(2) * ctx.erfinv(2 * rule.level(s) - 1)
        params = {rule.threshold: tau}
        if clip is not None:
            params[rule.clip] = to_mpf(clip, ctx)
        elif v_prime is not None:
            params[rule.clip] = _clip_for_v_prime(act, q, tau, to_mpf(v_prime, ctx), ctx)
    sigma_w2, sigma_b2 = eoc_weights(act, q, params, ctx)
    try:
        return Initialisation(act, sigma_w2, sigma_b2, params)
    except ParameterError as exc:  # e.g. s so close to 1 that sigma_w2 = 1/(1 - s) > 1e30
        raise NoSolutionError(f"the EoC initialisation of {act.name} for sparsity = {sparsity}, "
                              f"q_star = {q_star} leaves the supported range: {exc}") from None


def _verify(act, values, sparsity, v_prime, digits, ctx):
    """The solution must meet what was asked (chi_1(q*) = 1, the sparsity, the V' target)
    to ``digits``."""
    tol = ctx.mpf(10) ** (2 - digits)
    if sparsity is not None and abs(values["sparsity"] - to_mpf(sparsity, ctx)) > tol:
        raise ParameterError(f"the sparsity rule of {act.name} does not match its pieces: sparsity = {sparsity} "
                             f"set the threshold, but the pieces give sparsity {mpmath.nstr(values['sparsity'], 8)} "
                             "at q*: check its sparsity_rule (symmetric? which parameter is the threshold?)")
    if abs(values["chi1"] - 1) > tol:
        raise NoSolutionError(f"chi1(q*) = {mpmath.nstr(values['chi1'], 8)} != 1: the EoC solve "
                              "did not converge; try more digits")
    if v_prime is not None and abs(values["v_prime"] - to_mpf(v_prime, ctx)) > tol * abs(to_mpf(v_prime, ctx)):
        raise NoSolutionError(f"v_prime = {v_prime}: reached only {mpmath.nstr(values['v_prime'], 8)}; "
                              "targets this close to 0 need more digits")


def eoc_parameters(activation: ActivationLike, sparsity: Real | None = None, *, q_star: Real = 1,
                   clip: Real | None = None, v_prime: Real | None = None, digits: int = DEFAULT_DIGITS,
                   ctx: Context = mpmath.mp, **params: Real) -> EoCSolution:
    """The EoC initialisation with fixed point ``q_star`` and its classified fixed points.

    For an activation with a sparsity rule (``relu``, ``st``, ``crelu``, ``cst``, or your own
    with ``sparsity_rule=``: :class:`~meanfield.activations.SparsityRule`) give the target
    ``sparsity`` (it sets the threshold) and, for a clipped one, either ``clip`` (m) or
    ``v_prime`` (the target V'(q*) in (0, 1)). Any other activation (or these with explicit
    ``tau=...``, ``m=...``) takes its parameters as keywords. ``tau`` and ``m`` of the
    solution are the rule's threshold and clip parameters.

    >>> sol = eoc_parameters("cst", sparsity="0.8", v_prime="0.9")
    >>> [p.kind for p in sol.fixed_points.points]
    ['stable', 'unstable', 'stable']
    >>> eoc_parameters("crelu", sparsity="0.85")
    Traceback (most recent call last):
    ...
    meanfield.errors.ParameterError: crelu needs exactly one of clip (m > 0) or v_prime (in (0, 1))
    """
    digits = check_digits(digits)
    act = get_activation(activation)
    check_q(q_star, "q_star")
    if sparsity is None and (clip is not None or v_prime is not None):
        raise ParameterError("clip and v_prime go with sparsity; otherwise pass m=... directly")
    extra = 0
    while True:
        with ctx.workdps(digits + GUARD_DIGITS + extra):
            init = _eoc_initialisation(act, sparsity, q_star, clip, v_prime, params, ctx)
            need = cancellation_digits(init, q_star)
            if need > extra:  # a narrow clip piece cancels: solve again with more digits
                extra = need + 2  # the second solve's m, hence need, agrees to a digit
                continue
            q = to_mpf(q_star, ctx)
            sigma_w2, sigma_b2 = to_mpf(init.sigma_w2, ctx), to_mpf(init.sigma_b2, ctx)
            report = fixed_points(init, digits=digits, ctx=ctx)
            args = init.arguments(q, ctx)
            fns = compiled(act).mp.context(ctx)
            values = {k: +fns[k](*args) for k in ("sparsity", "chi1", "v_prime", "v_second")}
            _verify(act, values, sparsity, v_prime, digits, ctx)
        break
    values_p = init.parameters
    rule = act.sparsity_rule
    threshold, clip_name = (rule.threshold, rule.clip) if rule is not None else ("tau", "m")
    return EoCSolution(
        init=init, q_star=q, tau=values_p.get(threshold), m=values_p.get(clip_name),
        sigma_w2=sigma_w2, sigma_b2=sigma_b2, fixed_points=report, digits=digits, **values)
