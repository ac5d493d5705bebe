"""The command line: outputs match independent references, and hostile arguments get one
line on stderr with exit status 2 (never a traceback, a hang or a NaN).

Most calls go through ``meanfield.cli.main`` in-process (fast); a few run the installed
console script / ``python -m`` in a subprocess to check the entry point itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import subprocess
import sys

import mpmath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meanfield.cli import main


def call(argv):
    """main(argv) with its stdout and stderr captured: (exit status, out, err)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_clean_failure(code, out, err):
    assert code == 2, (code, out, err)
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("meanfield: error: "), err
    assert "Traceback" not in err


def significant_digits(text: str) -> int:
    mantissa = text.lstrip("-").split("e")[0].replace(".", "")
    return len(mantissa.lstrip("0"))


# -- outputs against independent references ------------------------------------------------

def test_eoc_relu_json_matches_paper_formulas(capsys):
    code, out, _ = run(["eoc", "--activation", "relu", "--sparsity", "0.75", "--digits", "25",
                        "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    with mpmath.workdps(40):
        s = mpmath.mpf("0.75")
        tau = mpmath.sqrt(2) * mpmath.erfinv(2 * s - 1)        # Phi(tau) = s at q* = 1
        e_phi2 = (1 + tau**2) * mpmath.ncdf(-tau) - tau * mpmath.npdf(tau)
        sigma_w2 = 1 / (1 - s)                                   # paper: 1/(1 - s)
        expected = {"tau": tau, "sigma_w2": sigma_w2, "sigma_b2": 1 - sigma_w2 * e_phi2}
        for key, value in expected.items():
            assert abs(mpmath.mpf(d[key]) - value) < mpmath.mpf(10) ** -23, key
    assert [p["kind"] for p in d["fixed_points"]] == ["half-stable"]
    assert d["large_q"] == "diverges"
    assert significant_digits(d["sigma_w2"]) == 25  # the digits asked for, zeros included


def test_eoc_cst_three_fixed_points(capsys):
    code, out, _ = run(["eoc", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9",
                        "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    kinds = [p["kind"] for p in d["fixed_points"]]
    assert kinds == ["stable", "unstable", "stable"]
    assert abs(mpmath.mpf(d["fixed_points"][0]["q"]) - 1) < 1e-25
    assert mpmath.mpf(d["fixed_points"][2]["chi1"]) > 1


def test_map_relu_closed_form(capsys):
    # ReLU: V = sigma_b2 + sigma_w2 q / 2, V' = chi1 = sigma_w2 / 2, sparsity 1/2
    code, out, _ = run(["map", "--activation", "relu", "--tau", "0", "--sigma-w2", "1.5",
                        "--sigma-b2", "0.25", "--q", "3", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert mpmath.mpf(d["variance"]) == mpmath.mpf("2.5")
    assert mpmath.mpf(d["v_prime"]) == mpmath.mpf("0.75") == mpmath.mpf(d["chi1"])
    assert mpmath.mpf(d["sparsity"]) == mpmath.mpf("0.5")


def test_fixed_points_linear_case(capsys):
    # leaky ReLU is linear in q: q* = sigma_b2 / (1 - sigma_w2 (1 + alpha^2) / 2)
    code, out, _ = run(["fixed-points", "--activation", "leaky_relu", "--alpha", "0.5",
                        "--sigma-w2", "1", "--sigma-b2", "0.375", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert len(d["fixed_points"]) == 1
    assert abs(mpmath.mpf(d["fixed_points"][0]["q"]) - 1) < 1e-25
    assert d["fixed_points"][0]["kind"] == "stable" and d["large_q"] == "bounded"


@pytest.mark.parametrize("latex", [False, True])
def test_formula(capsys, latex):
    code, out, _ = run(["formula", "--activation", "crelu"] + (["--latex"] if latex else []), capsys)
    assert code == 0
    assert ("\\Phi" in out) if latex else ("Phi(" in out)


def test_table_markdown_and_csv(tmp_path, capsys):
    target = tmp_path / "t.csv"
    code, out, _ = run(["table", "--format", "csv", "-o", str(target)], capsys)
    assert code == 0 and target.exists()
    rows = target.read_text().splitlines()
    assert rows[0].startswith("activation,sparsity")
    assert len(rows) == 1 + 1 + 8 + 30  # header, ReLU, ReLU_tau/ST_tau x 4, clipped x 15
    unclipped = [r for r in rows[1:] if r.split(",")[0] in ("relu", "st") and r.split(",")[1] != "0.5"]
    assert all("half-stable" in r for r in unclipped)


def test_correlation_relu_is_the_arc_cosine_kernel(capsys):
    # ReLU, sigma_w2 = 2, sigma_b2 = 0: V(q) = q, and rho(c) = (sqrt(1 - c^2) + (pi - acos c) c) / pi
    # (Cho & Saul 2009), rho'(c) = (pi - acos c) / pi, rho''(c) = 1 / (pi sqrt(1 - c^2)).
    code, out, _ = run(["correlation", "--activation", "relu0", "--sigma-w2", "2", "--sigma-b2", "0",
                        "--q-star", "1", "--c=-1,-0.3,0,0.7,1", "--digits", "25", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    with mpmath.workdps(40):
        for row in d["map"]:
            c = mpmath.mpf(row["c"])
            rho = (mpmath.sqrt(1 - c**2) + (mpmath.pi - mpmath.acos(c)) * c) / mpmath.pi
            assert abs(mpmath.mpf(row["rho"]) - rho) < mpmath.mpf(10) ** -24
            assert abs(mpmath.mpf(row["rho_prime"]) - (mpmath.pi - mpmath.acos(c)) / mpmath.pi) < 1e-24
            if abs(c) < 1:
                expected = 1 / (mpmath.pi * mpmath.sqrt(1 - c**2))
                assert abs(mpmath.mpf(row["rho_second"]) - expected) < 1e-23
            else:
                assert row["rho_second"] == "+inf"  # diverges at both ends, reported as such
    assert [(p["c"][:3], p["kind"]) for p in d["fixed_points"]] == [("1.0", "marginal")]
    assert d["xi_c"] == "+inf" and d["phase"] == "edge of chaos"


def test_correlation_text_lists_the_grid(capsys):
    code, out, _ = run(["correlation", "--activation", "st", "--sparsity", "0.5", "--points", "5",
                        "--digits", "10"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("correlation map of st at q* = 1.0")
    assert [ln.split()[0] for ln in lines[2:7]] == ["-1.000000000", "-0.5000000000", "0.0",
                                                     "0.5000000000", "1.000000000"]
    assert "rho(0) = " in out and "xi_c = +inf" in out and "nan" not in out.lower()


def test_diagnose_cst_three_fixed_points(capsys):
    code, out, _ = run(["diagnose", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9",
                        "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["verdict"] == "exploding"
    assert [p["kind"] for p in d["fixed_points"]] == ["stable", "unstable", "stable"]
    assert mpmath.mpf(d["other_stable"][0]["chi1"]) > 1
    assert d["basin"][1] == d["fixed_points"][1]["q"]
    assert float(d["margin"]) == 0 and d["xi_c"] == "+inf"


def test_diagnose_text_verdicts(capsys):
    for argv, verdict in ((["--activation", "relu", "--sparsity", "0.7"], "half-stable"),
                          (["--activation", "relu", "--sparsity", "0.5"], "trainable"),
                          (["--activation", "crelu", "--sparsity", "0.85", "--v-prime", "0.5"], "too-sparse")):
        code, out, _ = run(["diagnose", *argv, "--digits", "12", "--depth", "30"], capsys)
        assert code == 0
        assert out.splitlines()[0].startswith(f"verdict: {verdict}: ")
        assert "Jacobian at depth 30" in out


def test_console_script_entry_point():
    proc = subprocess.run([sys.executable, "-m", "meanfield.cli", "eoc", "--activation", "st",
                           "--sparsity", "0.5", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fixed_points"][0]["kind"] == "half-stable"
    bad = subprocess.run([sys.executable, "-m", "meanfield.cli", "eoc", "--activation", "st",
                          "--sparsity", "-3"], capture_output=True, text=True, timeout=60)
    assert_clean_failure(bad.returncode, bad.stdout, bad.stderr)


def test_python_dash_m_meanfield_and_the_top_level_help():
    from meanfield import __version__
    proc = subprocess.run([sys.executable, "-m", "meanfield", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"meanfield {__version__}", proc
    code, out, err = call(["--help"])
    assert code == 0 and "``" not in out and ":mod:" not in out
    description = out.split("positional arguments:")[0]
    assert "sparsity-inducing activations" in description and description.rstrip().endswith(".")


def test_the_wheel_ships_license_and_py_typed(tmp_path):
    """LICENSE, py.typed and the metadata's license in the built wheel (CHANGELOG.md is in
    the repository, beside README.md)."""
    import zipfile
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    assert (root / "CHANGELOG.md").read_text().startswith("# Changelog")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                           "-w", str(tmp_path), str(root)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and ("No matching distribution" in proc.stderr or "network" in proc.stderr.lower()):
        pytest.skip(f"cannot build a wheel here: {proc.stderr.strip()[-200:]}")
    assert proc.returncode == 0, proc.stderr
    [wheel] = tmp_path.glob("meanfield-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "meanfield/py.typed" in names
    assert any(n.endswith("/licenses/LICENSE") or n.endswith("/LICENSE") for n in names), names
    meta = next(n for n in names if n.endswith("METADATA"))
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(meta).decode()


# -- hostile arguments -----------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    [], ["eoc"], ["bogus"], ["eoc", "--activation", "tanh", "--sparsity", "0.5"],
    ["eoc", "--activation", "relu", "--sparsity", "0.2"],
    ["eoc", "--activation", "relu", "--sparsity", "1"],
    ["eoc", "--activation", "st", "--sparsity", "nan"],
    ["eoc", "--activation", "cst", "--sparsity", "0.8"],
    ["eoc", "--activation", "cst", "--sparsity", "0.8", "--clip", "1", "--v-prime", "0.5"],
    ["eoc", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "1"],
    ["eoc", "--activation", "crelu", "--sparsity", "0.8", "--clip", "-1"],
    ["eoc", "--activation", "relu", "--sparsity", "0.8", "--clip", "1"],
    ["eoc", "--activation", "relu", "--sparsity", "0.8", "--q-star", "0"],
    ["eoc", "--activation", "relu", "--sparsity", "0.8", "--digits", "0"],
    ["eoc", "--activation", "relu", "--sparsity", "0.8", "--digits", "1e9"],
    ["map", "--activation", "crelu", "--tau", "1", "--sigma-w2", "1", "--sigma-b2", "0", "--q", "1"],
    ["map", "--activation", "relu", "--sigma-w2", "-1", "--sigma-b2", "0", "--q", "1"],
    ["map", "--activation", "relu", "--sigma-w2", "1", "--sigma-b2", "-0.1", "--q", "1"],
    ["map", "--activation", "relu", "--sigma-w2", "1", "--sigma-b2", "0", "--q", "inf"],
    ["fixed-points", "--activation", "relu", "--tau", "-1", "--sigma-w2", "2", "--sigma-b2", "0"],
    ["fixed-points", "--activation", "hard_tanh", "--tau", "1", "--sigma-w2", "2", "--sigma-b2", "0"],
    ["table", "-o", "/nonexistent-dir/x.md"],
    ["correlation", "--activation", "relu", "--tau", "-1"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--c", "1.5"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--c", "nan"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--c", ","],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--points", "1"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--points", "100000"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--digits", "500"],
    ["correlation", "--activation", "relu", "--sparsity", "0.7", "--tau", "1"],
    ["correlation", "--activation", "relu0", "--sigma-w2", "2", "--sigma-b2", "0.1", "--q-star", "1"],
    ["correlation", "--activation", "relu0", "--sigma-w2", "2"],
    ["correlation", "--activation", "hard_tanh", "--v-prime", "0.5"],
    ["diagnose", "--activation", "cst", "--sparsity", "0.8"],
    ["diagnose", "--activation", "relu", "--sparsity", "0.7", "--depth", "0"],
    ["diagnose", "--activation", "relu", "--sparsity", "0.7", "--q-star", "-1"],
    ["diagnose", "--activation", "relu0", "--sigma-w2", "2", "--sigma-b2", "1"],
    ["diagnose", "--activation", "hard_tanh", "--tau", "1"],
])
def test_bad_arguments(argv, capsys):
    assert_clean_failure(*run(argv, capsys))


_NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["", " ", "0", "-0", "1e400", "-1e-400", "nan", "inf", "0x10", "1/2", "é", "--"]),
    st.text(max_size=8),
)
_FLAGS = ["--activation", "--sparsity", "--q-star", "--clip", "--v-prime", "--digits", "--tau",
          "--alpha", "--sigma-w2", "--sigma-b2", "--q", "--json", "--latex", "--format",
          "--points", "--c", "--depth"]


@settings(max_examples=150)
@given(command=st.sampled_from(["eoc", "fixed-points", "map", "correlation", "diagnose", "formula",
                                 "table", "nope"]),
       pairs=st.lists(st.tuples(st.sampled_from(_FLAGS),
                                st.one_of(_NUMBERS, st.sampled_from(
                                    ["relu", "st", "crelu", "cst", "relu0", "hard_tanh",
                                     "leaky_relu", "csv", "json"]))), max_size=7))
def test_fuzz_arguments(command, pairs):
    """Random and hostile arguments: exit 0 with no NaN in the output, or a one-line error."""
    argv = [command]
    for flag, value in pairs:
        argv += [flag] if flag in ("--json", "--latex") else [flag, value]
    if "--digits" in argv and command == "table":
        return  # the table recomputes the whole paper grid: covered above
    code, out, err = call(argv)
    if code == 0:
        assert err == ""
        assert not re.search(r"\bnan\b", out, re.IGNORECASE)
        # infinities only where they are meaningful (divergent derivatives, depth scales), spelled out
        assert not any(t in out.lower().split('"') for t in ("inf", "-inf", "infinity"))
    else:
        assert_clean_failure(code, out, err)
        # a parameter the command takes as a flag is named by its flag
        assert not re.search(r"(?<![-\w])(sparsity|q_star|clip|v_prime|sigma_w2|sigma_b2|tau|alpha|q|m|points|"
                             r"depth|digits)( = | must | in [\[(])", err), err


@pytest.mark.parametrize("argv, flag", [
    (["eoc", "--activation", "crelu", "--sparsity", "0.8"], "--clip"),
    (["eoc", "--activation", "crelu", "--sparsity", "1.5", "--clip", "1"], "--sparsity"),
    (["eoc", "--activation", "relu", "--sparsity", "0.8", "--q-star", "-1"], "--q-star"),
    (["eoc", "--activation", "crelu", "--sparsity", "0.8", "--v-prime", "2"], "--v-prime"),
    (["map", "--activation", "crelu", "--sigma-w2", "2", "--sigma-b2", "0", "--q", "1"], "--clip"),
    (["map", "--activation", "relu", "--sigma-w2", "-2", "--sigma-b2", "0", "--q", "1"], "--sigma-w2"),
    (["map", "--activation", "relu", "--sigma-w2", "2", "--sigma-b2", "0", "--q", "-1"], "--q"),
    (["diagnose", "--activation", "relu", "--sparsity", "0.8", "--depth", "0"], "--depth"),
    (["correlation", "--activation", "relu", "--sparsity", "0.7", "--c=2"], "--c"),
    (["eoc", "--activation", "relu", "--sparsity", "0.8", "--digits", "0"], "--digits"),
    (["phase-diagram", "--activation", "cst", "--sparsity", "0.5", "--clip-ratio", "0"], "--clip-ratio"),
    (["simulate", "--activation", "relu", "--sparsity", "0.8", "--width", "0", "--depth", "3"], "--width"),
])
def test_errors_name_the_flag(argv, flag, capsys):
    code, out, err = run(argv, capsys)
    assert_clean_failure(code, out, err)
    assert re.search(rf"(?<![-\w]){re.escape(flag)}(?![-\w])", err), err


def test_digits_mean_the_same_in_every_command(capsys):
    """--digits D: D significant digits written, each correct, in eoc, map, diagnose and table
    alike (the computation carries more), including D below the solvers' minimum."""
    base = ["--activation", "crelu", "--sparsity", "0.8", "--v-prime", "0.7"]
    code, out, err = run(["eoc", *base, "--digits", "40", "--json"], capsys)
    exact = json.loads(out)
    for d in (3, 6, 12):
        got = {}
        for command in (["eoc", *base], ["diagnose", *base]):
            code, out, err = run([*command, "--digits", str(d), "--json"], capsys)
            assert code == 0, err
            got[command[0]] = json.loads(out)["sigma_w2"]
        code, out, err = run(["table", *base, "--digits", str(d), "--format", "json"], capsys)
        assert code == 0, err
        got["table"] = json.loads(out)[0]["sigma_w2"]
        code, out, err = run(["map", "--activation", "crelu", "--tau", exact["tau"], "--clip", exact["m"],
                              "--sigma-w2", exact["sigma_w2"], "--sigma-b2", exact["sigma_b2"],
                              "--q", "1", "--digits", str(d), "--json"], capsys)
        assert code == 0, err
        assert significant_digits(json.loads(out)["v_prime"]) == d  # V'(q*) = 0.7 to D digits
        assert mpmath.mpf(json.loads(out)["v_prime"]) == mpmath.mpf(mpmath.nstr(mpmath.mpf("0.7"), d))
        assert len(set(got.values())) == 1, got  # the same string in every command
        value = next(iter(got.values()))
        assert significant_digits(value) == d
        assert value == mpmath.nstr(mpmath.mpf(exact["sigma_w2"]), d, strip_zeros=False)  # and correct


def test_json_is_the_result_types_to_dict(capsys):
    """The CLI's JSON is the core's to_dict (one writer of each result)."""
    from meanfield.diagnose import diagnose
    from meanfield.eoc import eoc_parameters
    sol = eoc_parameters("cst", "0.8", v_prime="0.9", digits=20)
    code, out, err = run(["eoc", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9", "--digits", "20",
                          "--json"], capsys)
    assert json.loads(out) == {**sol.to_dict(20), "digits": 20}
    code, out, err = run(["diagnose", "--activation", "cst", "--sparsity", "0.8", "--v-prime", "0.9", "--digits",
                          "20", "--json"], capsys)
    assert json.loads(out) == {**diagnose(sol, digits=20).to_dict(20), "digits": 20}


@settings(max_examples=40)
@given(act=st.sampled_from(["relu", "st", "crelu", "cst"]),
       s=st.floats(0.0, 0.995), target=st.floats(0.01, 0.99), clip=st.floats(0.01, 20),
       use_clip=st.booleans(), q_star=st.floats(1e-3, 1e3))
def test_fuzz_valid_eoc(act, s, target, clip, use_clip, q_star):
    """Valid-looking requests: either a finite answer with q* among the fixed points, or a
    clean error (s below the activation's range)."""
    argv = ["eoc", "--activation", act, "--sparsity", repr(s), "--q-star", repr(q_star),
            "--digits", "15", "--json"]
    if act in ("crelu", "cst"):
        argv += ["--clip", repr(clip)] if use_clip else ["--v-prime", repr(target)]
    code, out, err = call(argv)
    if (act in ("relu", "crelu") and s < 0.5) or 0 < s < 1e-100:  # 1e-100: smallest magnitude
        assert_clean_failure(code, out, err)
        return
    assert code == 0, err
    d = json.loads(out)
    if not d["degenerate"]:
        qs = [float(p["q"]) for p in d["fixed_points"]]
        # where V is within rounding of the identity around q* (cst with tau = 0 and a clip
        # far out: V' = 1 - 1e-27), a fixed point is only located to the documented
        # resolution near a tangency, 10^((3 - D)/2) relative at D digits, and the report
        # says it is not certified
        tol = 1e-9 if d["certified"] else 10 ** ((3 - 15) / 2)
        located = any(math.isclose(q, q_star, rel_tol=tol) for q in qs)
        # or located only to an unresolved range that holds q* (a crossing below the noise)
        blurred = any(float(a) <= q_star <= float(b) for a, b in d["unresolved"])
        assert located or blurred, (d["certified"], qs, d["unresolved"])


@settings(max_examples=8, deadline=None)
@given(act=st.sampled_from(["relu", "st", "crelu", "cst"]), s=st.floats(0.5, 0.95),
       target=st.floats(0.05, 0.95), q_star=st.floats(1e-2, 1e2))
def test_fuzz_valid_diagnose(act, s, target, q_star):
    """Valid requests: a verdict from the documented list, and no NaN anywhere."""
    argv = ["diagnose", "--activation", act, "--sparsity", repr(s), "--q-star", repr(q_star),
            "--digits", "12", "--depth", "20", "--json"]
    if act in ("crelu", "cst"):
        argv += ["--v-prime", repr(target)]
    code, out, err = call(argv)
    assert code == 0, err
    d = json.loads(out)
    assert d["verdict"] in ("unstable", "half-stable", "exploding", "fragile", "too-sparse", "trainable")
    assert "nan" not in out.lower()
    assert math.isclose(float(d["q_star"]), q_star, rel_tol=1e-9)
