"""Errors the workflow raises on bad input; each message names the file, object or config key."""


class ConfigError(ValueError):
    """A config value the schema accepts but the workflow cannot use (unknown names, clashes)."""
