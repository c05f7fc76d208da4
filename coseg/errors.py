"""The one exception type users see.

Every user-facing failure raises `CosegError` with a one-line message naming
the file or setting at fault; the CLI prints it and exits non-zero.
"""


class CosegError(Exception):
    """A clear, user-facing error (bad input, missing file, bad setting)."""


class InputError(CosegError, ValueError):
    """Bad input data: a file that is missing, unreadable or inconsistent."""
