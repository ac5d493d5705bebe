"""``ctx=``: every public function that takes an mpmath context computes in it.

A computation in a fresh ``mpmath.MPContext()`` must give the digits the default context
gives (the compiled formulas call the context's own ncdf, npdf, sqrt, exp, ..., not the
module's, which compute at the default context's precision), and leave both contexts'
precision as it found them. Each result is compared at 40 digits.
"""

from __future__ import annotations

import mpmath
import pytest

import meanfield as mf
from meanfield.correlation import correlation_fixed_points, correlation_map, kernel_map
from meanfield.diagnose import diagnose, diagnose_eoc
from meanfield.fixed_points import fixed_points
from meanfield.jacobian import jacobian_spectrum
from meanfield.maps import map_values

DIGITS = 40


def _same(a, b, digits=DIGITS):
    """a and b agree to ``digits`` significant digits (mpf, or containers of them)."""
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y, digits)
        return
    if isinstance(a, mpmath.mpf) or isinstance(b, mpmath.mpf):
        a, b = mpmath.mp.mpf(a), mpmath.mp.mpf(b)
        with mpmath.workdps(digits + 20):
            scale = max(abs(a), abs(b), mpmath.mpf(10) ** -300)
            assert abs(a - b) <= scale * mpmath.mpf(10) ** (2 - digits), (a, b)
        return
    assert a == b


def _solution(ctx):
    return mf.eoc_parameters("cst", sparsity="0.8", v_prime="0.9", digits=DIGITS, ctx=ctx)


@pytest.fixture(scope="module")
def pair():
    ctx = mpmath.MPContext()
    ctx.dps = 11  # a precision of its own, which no computation may leave changed
    before = mpmath.mp.dps
    yield ctx
    assert ctx.dps == 11 and mpmath.mp.dps == before


def test_eoc_parameters_and_fixed_points(pair):
    a, b = _solution(mpmath.mp), _solution(pair)
    for name in ("tau", "m", "sigma_w2", "sigma_b2", "chi1", "v_prime", "v_second", "sparsity"):
        _same(getattr(a, name), getattr(b, name))
    _same([p.q for p in a.fixed_points.points], [p.q for p in b.fixed_points.points])
    assert [p.kind for p in a.fixed_points.points] == [p.kind for p in b.fixed_points.points]
    ra, rb = fixed_points(a.init, digits=DIGITS), fixed_points(a.init, digits=DIGITS, ctx=pair)
    _same([(p.q, p.v_prime, p.v_second) for p in ra.points], [(p.q, p.v_prime, p.v_second) for p in rb.points])


def test_maps(pair):
    init = _solution(mpmath.mp).init
    for q in ("0.3", "1", "7.5"):
        a, b = map_values(init, q, digits=DIGITS), map_values(init, q, digits=DIGITS, ctx=pair)
        for name in ("variance", "v_prime", "v_second", "chi1", "sparsity"):
            _same(getattr(a, name), getattr(b, name))


def test_correlation_kernel_and_jacobian(pair):
    sol = _solution(mpmath.mp)
    for c in ("-0.6", "0.3", "0.99"):
        a = correlation_map(sol, c, digits=DIGITS)
        b = correlation_map(sol, c, digits=DIGITS, ctx=pair)
        _same([a.rho, a.rho_prime, a.rho_second], [b.rho, b.rho_prime, b.rho_second])
    ka = kernel_map(sol.init, "0.8", "1.3", "0.4", digits=DIGITS)
    kb = kernel_map(sol.init, "0.8", "1.3", "0.4", digits=DIGITS, ctx=pair)
    _same([ka.q1_next, ka.q2_next, ka.q12_next, ka.c_next], [kb.q1_next, kb.q2_next, kb.q12_next, kb.c_next])
    fa, fb = correlation_fixed_points(sol, digits=DIGITS), correlation_fixed_points(sol, digits=DIGITS, ctx=pair)
    _same([fa.rho0] + [p.c for p in fa.points], [fb.rho0] + [p.c for p in fb.points])
    ja, jb = jacobian_spectrum(sol, depth=100, digits=DIGITS), jacobian_spectrum(sol, depth=100, digits=DIGITS, ctx=pair)
    _same([ja.mean, ja.variance, ja.mu1, ja.mu2], [jb.mean, jb.variance, jb.mu1, jb.mu2])


def test_diagnosis(pair):
    sol = _solution(mpmath.mp)
    a, b = diagnose_eoc(sol, digits=DIGITS), diagnose_eoc(sol, digits=DIGITS, ctx=pair)
    assert (a.verdict, a.reason) == (b.verdict, b.reason)
    _same([a.margin, a.v_prime, a.v_second], [b.margin, b.v_prime, b.v_second])
    c = diagnose(sol.init, q_star=sol.q_star, digits=DIGITS, ctx=pair)
    assert c.verdict == a.verdict


def test_a_solution_solved_again_at_more_digits_is_solved_in_ctx(pair, monkeypatch):
    """A solution carrying fewer digits than asked is solved again (EoCSolution.at_digits,
    through maps.operating_point): in ``ctx``, never touching the global context (which a
    thread running beside would see)."""
    owner = next(k for k in type(mpmath.mp).__mro__ if "prec" in vars(k))
    prec = vars(owner)["prec"]
    touched = []

    def spy(self, value):
        if self is mpmath.mp:
            touched.append(value)
        prec.fset(self, value)

    coarse = mf.eoc_parameters("cst", sparsity="0.8", v_prime="0.9", digits=15, ctx=pair)
    monkeypatch.setattr(owner, "prec", property(prec.fget, spy))
    d = diagnose_eoc(coarse, digits=DIGITS, ctx=pair)
    correlation_map(coarse, "0.3", digits=DIGITS, ctx=pair)
    jacobian_spectrum(coarse, depth=10, digits=DIGITS, ctx=pair)
    monkeypatch.undo()
    assert touched == []
    assert d.verdict == diagnose_eoc(_solution(mpmath.mp), digits=DIGITS).verdict
