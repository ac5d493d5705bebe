"""The documentation site builds with `mkdocs build --strict` (every warning an error:
broken links and anchors, pages left out of the nav, docstrings mkdocstrings cannot
render), and its pages carry what the guides promise."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")
pytest.importorskip("mkdocstrings")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    return out


def test_every_page_is_built(site):
    for page in ("index.html", "getting-started/index.html", "theory/index.html",
                 "howto/choose-clip/index.html", "howto/read-diagnosis/index.html",
                 "howto/custom-activation/index.html", "howto/cluster-sweep/index.html",
                 "howto/train-mnist/index.html", "mnist/index.html", "notebooks/index.html",
                 "api/index.html", "api/core/index.html", "api/solvers/index.html",
                 "api/reports/index.html", "api/nn/index.html", "api/datasets/index.html"):
        assert (site / page).is_file(), page


def test_math_is_rendered_and_figures_are_published(site):
    theory = (site / "theory" / "index.html").read_text(encoding="utf-8")
    assert theory.count('class="arithmatex"') > 50
    for fig in ("images/phase-diagram.png", "results/mnist/accuracy.png",
                "results/mnist/loss-curves.png", "results/mnist/gradient-norms.png"):
        assert (site / fig).is_file(), fig
    assert 'src="../results/mnist/accuracy.png"' in (site / "mnist" / "index.html").read_text(encoding="utf-8")


def test_the_site_loads_nothing_from_another_host(site):
    """Offline, every page renders: no script, stylesheet, font or image from elsewhere; the
    math renderer is served by the site (MathJax's SVG build, pinned by sha256)."""
    import re
    external = re.compile(r'<(script|link|img|iframe)\b[^>]*\b(src|href)="(https?:)?//', re.IGNORECASE)
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 15
    for page in pages:
        text = page.read_text(encoding="utf-8")
        found = [m.group(0) for m in external.finditer(text) if "rel=\"" not in m.group(0)
                 or re.search(r'rel="(stylesheet|preload|preconnect|icon|manifest)', m.group(0))]
        assert not found, (page, found[:3])
    for css in site.rglob("*.css"):
        assert not re.search(r"@import\s+url\(\s*['\"]?https?:", css.read_text(encoding="utf-8")), css
    theory = (site / "theory" / "index.html").read_text(encoding="utf-8")
    assert 'src="../javascripts/vendor/mathjax-tex-svg.js"' in theory
    script = (site / "javascripts" / "vendor" / "mathjax-tex-svg.js").read_bytes()
    assert len(script) > 1_000_000 and b"MathJax" in script and b"typesetPromise" in script


def test_api_reference_comes_from_the_docstrings(site):
    import meanfield.eoc
    html = (site / "api" / "solvers" / "index.html").read_text(encoding="utf-8")
    assert 'id="meanfield.eoc.eoc_parameters"' in html
    # the docstring's doctest, rendered as a code block rather than as reST
    assert "&gt;&gt;&gt;" in html and "<blockquote>" not in html
    assert ":math:`" not in html and ":func:`" not in html
    first_line = meanfield.eoc.eoc_parameters.__doc__.strip().splitlines()[0]
    assert first_line.split("``")[0].strip()[:30] in html


def test_the_docstring_converter(load_script):
    """docs/scripts/griffe_rst.py: reST roles, doctest blocks, math and literal blocks."""
    mod = load_script("docs/scripts/griffe_rst.py")
    text = ("See :func:`~meanfield.eoc.eoc_parameters` and :mod:`meanfield.maps`, with :math:`q^*` "
            "and ``digits``.\n\n.. math::\n\n   V(q) = q\n\nExample::\n\n    x = 1\n\n"
            ">>> 1 + 1\n2\n\nafter")
    out = mod.to_markdown(text)
    assert "`eoc_parameters`" in out and "`meanfield.maps`" in out and "$q^*$" in out
    assert "`digits`" in out and "``digits``" not in out
    assert "$$\nV(q) = q\n$$" in out
    assert "Example:\n\n```text\n    x = 1\n```" in out
    assert "```pycon\n>>> 1 + 1\n2\n```" in out and out.endswith("after")
