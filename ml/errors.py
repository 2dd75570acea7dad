"""The base of every error a user can fix: the CLI prints its message as one line and exits 2."""


class DriftmartError(Exception):
    """A mistake in input, configuration or state that the message explains; not a bug."""
