"""The one legend of the token colours, as HTML: the Chat, the stepper and Learn show the same words."""
import html

from viz.trajectory import CANDIDATE_COLOR, CANDIDATE_LABEL, COLORS, LABELS, STATES


def legend_html(states: list[str] | tuple[str, ...] = STATES, note: str = "", candidates: bool = False) -> str:
    """A row of colour chips with their meaning (the stepper's labels), the candidate mark if asked, and an
    optional note after them."""
    chips = "".join(f'<span class="legend-item"><span class="legend-chip" style="background:{COLORS[s]}"></span>'
                    f"{html.escape(LABELS[s])}</span>" for s in states)
    if candidates:
        chips += (f'<span class="legend-item"><span style="color:{CANDIDATE_COLOR}">◆</span>'
                  f"{html.escape(CANDIDATE_LABEL.removeprefix('◆ '))}</span>")
    return f'<div class="cllm-legend">{chips}{f" <em>{html.escape(note)}</em>" if note else ""}</div>'
