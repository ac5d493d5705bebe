"""A griffe extension: the package's reST docstrings as Markdown for mkdocstrings.

The docstrings are written for ``help()`` and the doctests (reST roles, ``>>>`` blocks,
``.. math::``); this renders them on the site without changing them: roles become code
or MathJax, doctest blocks become fenced ``pycon`` blocks.
"""

import re

import griffe

_MATH = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:func|class|mod|data|attr|meth|obj|exc):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _short(match):
    name = match.group(1)
    return f"`{name.rsplit('.', 1)[-1] if match.group(0).count('~') else name}`"


def _inline(line: str) -> str:
    line = _MATH.sub(lambda mt: "$" + mt.group(1) + "$", line)
    line = _ROLE.sub(_short, line)
    return _LITERAL.sub(r"`\1`", line)


def to_markdown(text: str) -> str:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped.startswith(">>>"):  # a doctest block runs to the next blank line
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].strip())
                i += 1
            out += [f"{indent}```pycon", *(indent + b for b in block), f"{indent}```"]
            continue
        if stripped.startswith(".. math::"):  # display math: the indented block below
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i].strip())
                i += 1
            while body and not body[-1]:
                body.pop()
            out += [f"{indent}$$", *(indent + b for b in body if b), f"{indent}$$", ""]
            continue
        if stripped.endswith("::") and not stripped.startswith(".."):  # literal block follows
            out.append(_inline(line[:-3] if line.endswith(" ::") else line[:-1]))
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            while body and not body[0].strip():
                body.pop(0)
            out += ["", f"{indent}```text", *body, f"{indent}```", ""]
            continue
        out.append(_inline(line))
        i += 1
    return "\n".join(out)


class ReSTToMarkdown(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
