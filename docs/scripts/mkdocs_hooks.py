"""mkdocs hooks: publish the committed result figures beside the pages that show them.

docs/mnist.md links its figures as ``../results/DIR/*.png`` (DIR: mnist, mnist-epochs40, ...)
so that they also show on the repository's web view; the site serves them as
``results/DIR/*.png``.
"""

from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
#: every results directory with figures (the protocol's and each study outside it)
PUBLISHED = tuple(sorted(str(d.relative_to(ROOT)) for d in (ROOT / "results").iterdir() if any(d.glob("*.png"))))


def on_files(files, config):
    for folder in PUBLISHED:
        for path in sorted((ROOT / folder).glob("*.png")):
            files.append(File.generated(config, f"{folder}/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown, page, config, files):
    for folder in PUBLISHED:
        markdown = markdown.replace(f"](../{folder}/", f"]({folder}/")
    return markdown
