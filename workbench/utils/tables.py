"""The one table writer: every markdown table the workbench prints or writes (results, leaderboards, calibration,
carried-over settings, counts) is built here from a header and rows of cells; CSV files of per-run rows too.

    markdown_table(["model", "CIDEr"], [["base", "58.8"], ["oracle", "99.0"]])
    # | model | CIDEr |
    # |---|---|
    # | base | 58.8 |
    # | oracle | 99.0 |
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .io import atomic_write


def markdown_table(header: list, rows: list) -> str:
    """A GitHub markdown table: ``header`` [C] cells, then one line per row of ``rows`` ([N][C] cells, ``str``-ed).
    A row of the wrong length is refused with its index, so a column never silently shifts."""
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"table row {i} has {len(row)} cells for {len(header)} columns "
                             f"({list(header)}): {list(row)}; give every row one cell per column.")
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def write_csv(rows: list, path: str | os.PathLike, first: tuple = ()) -> Path:
    """Rows (dicts; nested values as JSON) to a CSV at ``path``, atomically: the union of their keys as columns,
    ``first`` leading, the rest sorted."""
    keys = sorted({k for r in rows for k in r}, key=lambda k: (k not in first, first.index(k) if k in first else 0, k))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))
