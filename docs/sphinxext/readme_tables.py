"""``.. readme-table::``: a table of README.md, rendered in the documentation.

The README is the one place where measured results are written down; the
documentation shows the same tables instead of a copy that could drift::

    .. readme-table:: Published vs measured
       :nth: 1

takes the ``nth`` Markdown table (default 1) below the first README heading
that contains the argument, up to the next heading of the same or a higher
level. Cells are shown as plain text (inline code marks removed). A missing
heading or table is an error, so the build fails when the README changes
shape.
"""

import os
import re

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.errors import ExtensionError

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")

_HEADING = re.compile(r"^(#+)\s+(.*)$")
_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _cells(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [c.strip().replace("`", "") for c in line.split("|")]


def readme_tables(text, heading):
    """Markdown tables (header, rows) in the README section whose title contains ``heading``."""
    lines = text.splitlines()
    start = level = None
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if m and heading in m.group(2):
            start, level = i + 1, len(m.group(1))
            break
    if start is None:
        raise ExtensionError(f"readme-table: no README heading contains {heading!r}")
    tables, current = [], []
    in_code = False
    for line in lines[start:]:
        if line.startswith("```"):
            in_code = not in_code
        m = None if in_code else _HEADING.match(line)
        if m and len(m.group(1)) <= level:
            break
        if not in_code and line.lstrip().startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    parsed = []
    for table in tables:
        if len(table) < 2 or not _RULE.match(table[1]):
            continue
        header = _cells(table[0])
        rows = [_cells(r) for r in table[2:]]
        for r in rows:
            if len(r) != len(header):
                raise ExtensionError(
                    f"readme-table: a row of the table under {heading!r} has {len(r)} "
                    f"cells, its header {len(header)}: {r}")
        parsed.append((header, rows))
    return parsed


def _row(cells, header=False):
    row = nodes.row()
    for text in cells:
        entry = nodes.entry()
        if text:
            entry += nodes.paragraph(text=text)
        row += entry
    return row


class ReadmeTable(Directive):
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {"nth": directives.positive_int, "class": directives.class_option}

    def run(self):
        env = self.state.document.settings.env
        path = os.path.abspath(README)
        env.note_dependency(path)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        heading = self.arguments[0]
        nth = self.options.get("nth", 1)
        tables = readme_tables(text, heading)
        if len(tables) < nth:
            raise self.error(f"README section {heading!r} has {len(tables)} tables, "
                             f"not {nth}")
        header, rows = tables[nth - 1]
        table = nodes.table(classes=["readme-table"] + self.options.get("class", []))
        group = nodes.tgroup(cols=len(header))
        table += group
        for _ in header:
            group += nodes.colspec(colwidth=1)
        thead = nodes.thead()
        thead += _row(header, header=True)
        group += thead
        tbody = nodes.tbody()
        for r in rows:
            tbody += _row(r)
        group += tbody
        return [table]


def setup(app):
    app.add_directive("readme-table", ReadmeTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "version": "1"}
