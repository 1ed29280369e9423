"""The one error the command line reports as a message, without a traceback."""


class StackError(Exception):
    """Something the user can act on: a missing tool, a port in use, a server that didn't start."""
