"""The one legend of the token colours, as HTML: the Chat, the stepper and Learn show the same words."""
import html

from viz.trajectory import COLORS, LABELS, STATES


def legend_html(states: list[str] | tuple[str, ...] = STATES, note: str = "") -> str:
    """A row of colour chips with their meaning (the stepper's labels), and an optional note after them."""
    chips = "".join(f'<span class="legend-item"><span class="legend-chip" style="background:{COLORS[s]}"></span>'
                    f"{html.escape(LABELS[s])}</span>" for s in states)
    return f'<div class="cllm-legend">{chips}{f" <em>{html.escape(note)}</em>" if note else ""}</div>'
