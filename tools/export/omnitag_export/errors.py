class ExportError(Exception):
    """A user-facing failure: the message says what is wrong and with which file or key."""
