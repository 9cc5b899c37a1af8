"""The error type of everything a user can fix (a bad flag, a missing file, an unknown engine).

Commands print it as one line on stderr and exit with status 2, never with a traceback. It lives
in the lower layer so that the engines, the lab and the service raise the same type.
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix (bad flag, unreachable URL, missing file): printed as one line."""
