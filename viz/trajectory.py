"""The Jacobi trajectory as a passes x window-slots grid, one animation frame per forward pass.

Cell colours follow the reference definitions (§2) as computed by `model_utils.metrics`: a slot is
final once the contiguous correct prefix has covered it, fast-forwarded in the pass that covers it,
stationary while it already holds its final token (and keeps it) ahead of the prefix, else changing.
"""
import html
from dataclasses import dataclass

import plotly.graph_objects as go

from model_utils.metrics import Progress, pass_states, run_progress
from model_utils.records import DecodeResult, Pass

STATES = ("final", "fast-forwarded", "stationary", "changing")
LABELS = {
    "final": "final (converged in an earlier pass)",
    "fast-forwarded": "became final this pass (fast-forwarded)",
    "stationary": "stationary (right ahead of the prefix, kept)",
    "changing": "still changing",
}
COLORS = {"final": "#c9ced6", "fast-forwarded": "#3aa655", "stationary": "#4a7fe0", "changing": "#f2b134"}
CANDIDATE_LABEL = "◆ guessed by a candidate branch (n-gram or recycled) that won its pass"
CANDIDATE_COLOR = "#7b2fa8"
PLAY_MS = 700


@dataclass
class Cell:
    pos: int  # generated-token position
    token: int
    state: str


def cell_state(k: int, pos: int, prog: Progress) -> str:
    """State of position `pos` after pass `k`; slots past the output (after EOS) are changing."""
    if pos >= len(prog.final_at):
        return "changing"
    if prog.final_at[pos] < k:
        return "final"
    if prog.final_at[pos] == k:
        return "fast-forwarded"
    return "stationary" if prog.correct_since[pos] <= k else "changing"


def row_origins(result: DecodeResult) -> list[int]:
    """Position of window slot 0 in each row: the block start for the block scheme, else the pass start."""
    if result.scheme != "block":
        return [p.start for p in result.passes]
    first: dict[int, int] = {}
    for p in result.passes:
        first.setdefault(p.block, p.start)
    return [first[p.block] for p in result.passes]


def cell_grid(result: DecodeResult) -> list[list[Cell | None]]:
    """One row per pass, one column per window slot; None where the pass holds no token."""
    states, prog, origins = pass_states(result), run_progress(result), row_origins(result)
    width = max((p.start - o + len(p.guess) for p, o in zip(result.passes, origins)), default=1)
    return [[Cell(o + j, state[o + j], cell_state(k, o + j, prog)) if o + j in state else None
             for j in range(width)]
            for k, (state, o) in enumerate(zip(states, origins))]


def token_namer(result: DecodeResult, tokenizer=None, width: int | None = 9):
    """id -> printable text cut to `width` (None: whole): the tokenizer's, else the record's guess_text, else the id."""
    if tokenizer is not None:
        return lambda t: printable(tokenizer.decode([t]), width)
    known = {t: s for p in result.passes for t, s in zip(p.guess, p.guess_text)}
    return lambda t: printable(known.get(t, str(t)), width)


def printable(text: str, width: int | None = 9) -> str:
    """Visible spaces and newlines, cut to `width`; escaped so Plotly does not read "</s>" as markup."""
    text = text.replace("\n", "↵").replace(" ", "·") or "∅"
    return html.escape(text if width is None or len(text) <= width else text[: width - 1] + "…", quote=False)


def candidate_cells(result: DecodeResult) -> dict[tuple[int, int], str]:
    """(pass, position) -> origin of every token that a winning candidate branch guessed and the pass verified."""
    cells = {}
    for k, p in enumerate(result.passes):
        if p.winner:
            branch = p.branches[p.winner - 1]
            for i, (guessed, made) in enumerate(zip(branch, p.new_tokens)):
                if guessed != made:
                    break
                cells[(k, p.start + 1 + i)] = p.branch_origins[p.winner - 1]
    return cells


def fed_note(p: Pass, pos: int, name) -> str:
    """Hover line: what the pass fed at a position and where that guess came from ("" outside its window)."""
    j = pos - p.start
    if not p.origins or not 0 <= j < len(p.window):
        return ""
    what = ("the last verified token" if j == 0 else "a random refill" if p.origins[j] == "random"
            else "the model's guess from the pass before")
    return f"<br>fed {name(p.window[j])} here: {what}"


def branch_note(p: Pass) -> str:
    """What the candidate branches of a pass did, for its heading ("" without any)."""
    if not p.branches:
        return ""
    if p.winner:
        return f" · the {p.branch_origins[p.winner - 1]} candidate won"
    return f" · {len(p.branches)} candidate(s) fed, the window won"


def committed_by(result: DecodeResult) -> list[int]:
    """For each output position, the pass whose new tokens made it final (verified)."""
    return [p.index for p in result.passes for _ in p.new_tokens]


def _frame(grid, result: DecodeResult, committed: list[int], candidates: dict[tuple[int, int], str], name,
           full_name, k: int, rows: int, title: str) -> go.Frame:
    """Frame k: the heatmap of passes max(0, k-rows+1)..k, the candidate marks, the title and the current-row box."""
    lo = max(0, k - rows + 1)
    z, text, hover, marks = [], [], [], ([], [], [])
    for r in range(lo, k + 1):
        z.append([None if c is None else STATES.index(c.state) for c in grid[r]])
        text.append(["" if c is None else name(c.token) for c in grid[r]])
        row = []
        for j, c in enumerate(grid[r]):
            origin = None if c is None else candidates.get((r, c.pos))
            row.append("" if c is None else
                       f"{full_name(c.token)} (id {c.token})<br>position {c.pos} · pass {r}<br>{LABELS[c.state]}"
                       f"<br>committed by pass {committed[c.pos] if c.pos < len(committed) else '–'}"
                       + fed_note(result.passes[r], c.pos, full_name)
                       + (f"<br>guessed by the {origin} candidate" if origin else ""))
            if origin:
                marks[0].append(j + 0.34)
                marks[1].append(r - 0.26)
                marks[2].append(f"guessed by the {origin} candidate, verified in pass {r}")
        hover.append(row)
    n = len(STATES)
    scale = [[(i + e) / n, COLORS[s]] for i, s in enumerate(STATES) for e in (0, 1)]
    heat = go.Heatmap(z=z, x=list(range(len(grid[0]))), y=list(range(lo, k + 1)), text=text, hovertext=hover,
                      texttemplate="%{text}", textfont={"size": 12}, hovertemplate="%{hovertext}<extra></extra>",
                      colorscale=scale,
                      zmin=-0.5, zmax=n - 0.5, showscale=False, xgap=2, ygap=2)
    mark = go.Scatter(x=marks[0], y=marks[1], hovertext=marks[2], mode="markers", showlegend=False,
                      hovertemplate="%{hovertext}<extra></extra>",
                      marker={"symbol": "diamond", "size": 8, "color": CANDIDATE_COLOR})
    p = result.passes[k]
    green = sum(c is not None and c.state == "fast-forwarded" for c in grid[k])
    heading = (f"pass {k} of {len(result.passes) - 1} · block {max(p.block, 0)} · {green} slot(s) reached their "
               f"final value (green) · {len(p.new_tokens)} token(s) verified{branch_note(p)}")
    layout = {
        "title": {"text": f"{title} · {heading}" if title else heading},
        "yaxis": {"range": [lo + rows - 0.5, lo - 0.5]},
        "shapes": [{"type": "rect", "xref": "paper", "x0": 0, "x1": 1, "y0": k - 0.5, "y1": k + 0.5,
                    "line": {"color": "#222", "width": 2}}],
    }
    return go.Frame(name=str(k), data=[heat, mark], traces=[0, 1], layout=layout)


def trajectory_figure(result: DecodeResult, tokenizer=None, current: int | None = None, rows: int = 12,
                      title: str = "") -> go.Figure:
    """Passes x window slots, token text in each cell; frame k shows the last `rows` passes up to pass k."""
    grid, name, full_name = cell_grid(result), token_namer(result, tokenizer), token_namer(result, tokenizer, None)
    last = len(result.passes) - 1
    current = last if current is None else max(0, min(current, last))
    rows = min(rows, len(result.passes))
    committed, candidates = committed_by(result), candidate_cells(result)
    frames = [_frame(grid, result, committed, candidates, name, full_name, k, rows, title)
              for k in range(len(result.passes))]
    legend = [go.Scatter(x=[None], y=[None], mode="markers", name=LABELS[s], showlegend=True,
                         marker={"symbol": "square", "size": 14, "color": COLORS[s]}) for s in STATES]
    if candidates:
        legend.append(go.Scatter(x=[None], y=[None], mode="markers", name=CANDIDATE_LABEL, showlegend=True,
                                 marker={"symbol": "diamond", "size": 10, "color": CANDIDATE_COLOR}))
    fig = go.Figure(data=[*frames[current].data, *legend], frames=frames)
    now = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}, "transition": {"duration": 0}}
    play = {"mode": "immediate", "fromcurrent": True, "frame": {"duration": PLAY_MS, "redraw": True},
            "transition": {"duration": 0}}
    plot_px = 28 * rows  # the grid's height; the controls and legend sit a fixed number of pixels off it
    crowded = len(frames) > 30  # then only the current pass is labelled on the slider
    fig.update_layout(
        title={"yref": "container", "y": 1, "yanchor": "top", "pad": {"t": 14}},
        height=plot_px + 260 + 24 * bool(candidates), plot_bgcolor="white",
        margin={"l": 60, "r": 20, "t": 120 + 24 * bool(candidates), "b": 140},  # room for the legend's extra row
        xaxis={"title": {"text": "window slot", "standoff": 4}, "side": "top", "dtick": 1, "showgrid": False,
               "range": [-0.5, len(grid[0]) - 0.5], "zeroline": False},
        yaxis={"title": "forward pass", "dtick": 1, "showgrid": False, "zeroline": False},
        legend={"orientation": "h", "x": 0, "y": 1 + 50 / plot_px, "yanchor": "bottom", "font": {"size": 11}},
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0, "y": -14 / plot_px, "xanchor": "left",
                      "yanchor": "top", "showactive": False, "pad": {"t": 0}, "buttons": [
                          {"label": "▶ Play", "method": "animate", "args": [None, play]},
                          {"label": "❚❚ Pause", "method": "animate", "args": [[None], now]}]}],
        sliders=[{"active": current, "x": 0, "len": 1, "y": -52 / plot_px, "yanchor": "top",
                  "currentvalue": {"prefix": "pass ", "xanchor": "right", "font": {"color": "#222"}}, "pad": {"t": 0},
                  "font": {"color": "rgba(0,0,0,0)" if crowded else "#444"},
                  "steps": [{"label": str(k), "method": "animate", "args": [[str(k)], now]}
                            for k in range(len(result.passes))]}],
    )
    fig.update_layout(frames[current].layout)
    return fig


def block_starts(result: DecodeResult) -> list[int]:
    """Index of the first pass of each block (the prefill counts as its own block)."""
    return [k for k, p in enumerate(result.passes) if k == 0 or p.block != result.passes[k - 1].block]
