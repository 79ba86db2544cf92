"""Errors a user can act on: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A problem with the user's input (a path, a file, an option), stated so they can fix it."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, carrying what the interrupted command kept and how to continue; the CLI prints it as one line."""
