"""The one exception type users see: a clear, one-line message about bad input."""


class RethinkgenError(Exception):
    """Bad input or an unusable environment; the CLI prints it on one line and exits non-zero."""


def choice_error(what: str, value, allowed) -> RethinkgenError:
    """An error naming the bad value and every allowed one."""
    return RethinkgenError(f"unknown {what} {value!r}; allowed: {', '.join(map(str, allowed))}")
