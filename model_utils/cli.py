"""What every command line of the project shares: quiet transformers, and bad input as one line."""
import sys
from collections.abc import Callable

from model_utils.errors import UserError
from model_utils.loading import quiet_transformers


def run_cli(body: Callable[[], None]) -> int:
    """Run a CLI body: exit 0, or print its UserError as one line on stderr and exit 2."""
    quiet_transformers()
    try:
        body()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
