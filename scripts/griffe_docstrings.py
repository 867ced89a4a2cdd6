"""A griffe extension: our docstrings' reST habits, rendered as Markdown on the site.

The docstrings are written for ``help()`` and editors: Sphinx roles
(:class:`Faults`), ``::`` before a literal block, and ``>>>`` examples. In
Markdown a role would show as typed and ``>>>`` would become nested quotes, so
before mkdocstrings renders a docstring this turns a role into inline code, a
``::`` into ``:``, and each run of ``>>>`` lines into a ``pycon`` block. The
source keeps its plain-text form.

A constant is documented, as Sphinx reads it, by ``#:`` comment lines right
above its assignment; griffe reads only a string below it, so this extension
makes those comments the constant's docstring.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|data|exc|obj):`~?([^`]+)`")


def _role(match: re.Match[str]) -> str:
    name = match[1]
    # `~a.b.C` shows as `C`, as Sphinx shows it; a leading dot is a relative name.
    return f"`{name.rsplit('.', 1)[-1] if match[0].count('~') else name.lstrip('.')}`"


def markdown(text: str) -> str:
    """The docstring ``text`` in the Markdown the site renders."""
    text = _ROLE.sub(_role, text)
    out: list[str] = []
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.lstrip().startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out += ["", f"{indent}```pycon"]
            while index < len(lines) and lines[index].strip():
                out.append(lines[index])
                index += 1
            out += [f"{indent}```", ""]
            continue
        out.append(line[:-1] if line.endswith("::") else line)
        index += 1
    return "\n".join(out)


def comment_docstring(attr: griffe.Attribute) -> str | None:
    """The ``#:`` lines right above ``attr``'s assignment, as one text, or None."""
    if attr.lineno is None or attr.filepath is None or isinstance(attr.filepath, list):
        return None
    source = attr.lines_collection[attr.filepath]
    found: list[str] = []
    index = attr.lineno - 2
    while index >= 0 and source[index].lstrip().startswith("#:"):
        found.insert(0, source[index].lstrip()[2:].removeprefix(" "))
        index -= 1
    return "\n".join(found) or None


class ReSTHabits(griffe.Extension):
    """Rewrite each docstring once it is loaded (see the module's docstring)."""

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs: Any) -> None:
        # Called after on_instance, which found no docstring to rewrite.
        if attr.docstring is None and (text := comment_docstring(attr)) is not None:
            attr.docstring = griffe.Docstring(markdown(text), lineno=attr.lineno, parent=attr)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
