class UserError(Exception):
    """A bad input or setting, explained in one sentence for the person who gave it."""
