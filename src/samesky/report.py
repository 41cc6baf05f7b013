"""Captions: each figure's and table's caption is written once, in ``workflow/report/<name>.rst`` (a Jinja
template over the config, as Snakemake's report renders it), and the Markdown and LaTeX tables take theirs
from the same file, so the report and the tables never say different things."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace


def caption(rst_path: str | Path, config) -> str:
    """The caption in ``rst_path`` rendered with ``config`` (``snakemake.config`` in the template), as
    plain text. A config key the template needs and ``config`` lacks is an error, not a blank."""
    import jinja2

    template = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(Path(rst_path).read_text())
    text = template.render(snakemake=SimpleNamespace(config=config))
    for markup in (r"``(.+?)``", r"\*\*(.+?)\*\*", r"\*(.+?)\*"):  # rst literals, bold, emphasis
        text = re.sub(markup, r"\1", text)
    return " ".join(text.split())
