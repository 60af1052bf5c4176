"""Numbers typed or sent to the app, turned into what the library takes, or one clear sentence."""
import math

from model_utils.errors import UserError

MAX_UPLOAD_BYTES = 2_000_000  # Gradio refuses a larger upload before it is stored (launch's max_file_size)


def whole_number(value, what: str) -> int:
    """An int from a UI or API value (3, 3.0, "3"); anything else is refused by name."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise UserError(f"The {what} must be a whole number (got {value!r}).") from None
    if not math.isfinite(number) or number != int(number):
        raise UserError(f"The {what} must be a whole number (got {value!r}).")
    return int(number)


def real_number(value, what: str) -> float:
    """A finite float from a UI or API value, or one sentence naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not math.isfinite(number):
        raise UserError(f"The {what} must be a number (got {value!r}).")
    return number
