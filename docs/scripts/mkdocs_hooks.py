"""mkdocs hooks: publish the committed result figures beside the pages that show them, and
ship the math renderer with the site.

docs/mnist.md links its figures as ``../results/DIR/*.png`` (DIR: mnist, mnist-epochs40, ...)
so that they also show on the repository's web view; the site serves them as
``results/DIR/*.png``.
"""

import hashlib
import io
import os
import tarfile
import urllib.request
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
#: every results directory with figures (the protocol's and each study outside it)
PUBLISHED = tuple(sorted(str(d.relative_to(ROOT)) for d in (ROOT / "results").iterdir() if any(d.glob("*.png"))))


#: MathJax, served from the site itself (no CDN: the pages render offline): its SVG build
#: (one file, no web fonts), taken from the npm registry's tarball, checked against this
#: sha256, and cached (``MEANFIELD_DOCS_CACHE``, default ~/.cache/meanfield/docs).
MATHJAX = {"version": "3.2.2", "url": "https://registry.npmjs.org/mathjax/-/mathjax-3.2.2.tgz",
           "sha256": "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09",
           "member": "package/es5/tex-svg.js", "site_path": "javascripts/vendor/mathjax-tex-svg.js"}


def mathjax_file() -> Path:
    """The cached ``tex-svg.js`` of :data:`MATHJAX`, fetched and verified on first use."""
    cache = Path(os.environ.get("MEANFIELD_DOCS_CACHE", Path.home() / ".cache" / "meanfield" / "docs"))
    target = cache / f"mathjax-{MATHJAX['version']}-tex-svg.js"
    if target.is_file():
        return target
    try:
        with urllib.request.urlopen(MATHJAX["url"], timeout=60) as response:
            data = response.read()
    except OSError as exc:
        raise PluginError(f"MathJax {MATHJAX['version']} could not be fetched from {MATHJAX['url']} ({exc}); "
                          f"place its {MATHJAX['member']} at {target}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MATHJAX["sha256"]:
        raise PluginError(f"{MATHJAX['url']}: sha256 {digest}, expected {MATHJAX['sha256']}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        script = tar.extractfile(MATHJAX["member"]).read()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".partial")
    tmp.write_bytes(script)
    tmp.replace(target)
    return target


def on_files(files, config):
    files.append(File.generated(config, MATHJAX["site_path"], abs_src_path=str(mathjax_file())))
    for folder in PUBLISHED:
        for path in sorted((ROOT / folder).glob("*.png")):
            files.append(File.generated(config, f"{folder}/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    for folder in PUBLISHED:
        markdown = markdown.replace(f"](../{folder}/", f"]({folder}/")
    return markdown
