"""``meanfield verify``: one activation through the property checks of
:func:`meanfield.testing.verify` (closed forms against quadrature, V' and V'' against the
derivative of V, the fixed points against a dense scan, the correlation map at c = 1),
with hypothesis choosing the parameters; exit status 1 when a property fails."""

from __future__ import annotations

from ..activations import BUILTIN, get_activation
from ._common import activation_params

VERIFY_HELP = """Check the closed forms and solvers of one activation against independent
references, over parameters hypothesis draws (or those given by --tau / --clip / --alpha):
each property, the examples tried, the largest error relative to the quantity's scale,
and, when one fails, the counterexample hypothesis shrank it to. Exit status 1 if a
property fails (for a CI job). Needs hypothesis (pip install 'meanfield[test]')."""


def register(sub):
    """Add verify to the subparsers ``sub``."""
    v = sub.add_parser("verify", help="check an activation's closed forms and solvers against references",
                       description=VERIFY_HELP)
    v.add_argument("--activation", required=True, choices=sorted(BUILTIN))
    v.add_argument("--tau", help="threshold tau, fixed (default: drawn)")
    v.add_argument("--clip", help="clip level m, fixed (default: drawn)")
    v.add_argument("--alpha", help="negative slope (leaky_relu), fixed (default: drawn)")
    v.add_argument("--examples", type=int, default=20, help="hypothesis examples per property (default 20)")
    v.add_argument("--digits", type=int, default=20, help="digits each closed form must match (default 20)")
    v.add_argument("--seed", type=int, default=0, help="the same examples for the same seed (default 0)")
    v.set_defaults(handler=_cmd_verify)


def _cmd_verify(a):
    from ..testing import verify
    act = get_activation(a.activation)
    given = activation_params(a, act)
    report = verify(act, params=given or None, examples=a.examples, digits=a.digits, seed=a.seed)
    print(report.summary())
    if not report.passed:
        raise SystemExit(1)
