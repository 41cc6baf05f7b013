"""samesky: do foundation models see the same sky?

All the workflow's logic: every Snakemake rule runs one step of ``samesky.steps`` (named after the rule),
which calls the library modules beside it.
"""

__version__ = "0.1.0"
