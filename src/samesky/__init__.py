"""samesky: do foundation models see the same sky?

The importable logic of the workflow; ``workflow/scripts/`` are thin adapters around it.
"""

__version__ = "0.1.0"
