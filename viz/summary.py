"""Run-level plots: tokens made final per pass, cumulative tokens vs forward passes, training losses."""
import itertools

import plotly.graph_objects as go

from model_utils.records import DecodeResult

PALETTE = ("#4a7fe0", "#3aa655", "#e0574a", "#9b59b6", "#f2b134")


def _style(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=340, plot_bgcolor="white",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"})
    fig.update_xaxes(gridcolor="#eee")
    fig.update_yaxes(gridcolor="#eee", rangemode="tozero")
    return fig


def tokens_per_pass_figure(results: dict[str, DecodeResult]) -> go.Figure:
    """Bars: how many tokens each forward pass made final (the prefill is pass 0)."""
    fig = go.Figure([go.Bar(x=[p.index for p in r.passes], y=[len(p.new_tokens) for p in r.passes], name=name,
                            marker_color=color)
                     for (name, r), color in zip(results.items(), itertools.cycle(PALETTE))])
    fig.update_layout(barmode="group")
    return _style(fig, "Tokens made final per forward pass", "forward pass", "tokens")


def cumulative_figure(results: dict[str, DecodeResult], ar_reference: bool = True) -> go.Figure:
    """Generated tokens after each forward pass; greedy AR makes exactly one per pass (dashed line)."""
    fig = go.Figure()
    longest = max((len(r.passes) for r in results.values()), default=1)
    if ar_reference:
        fig.add_scatter(x=[0, longest], y=[0, longest], mode="lines", name="AR (1 token per pass)",
                        line={"dash": "dash", "color": "#888"})
    for (name, r), color in zip(results.items(), itertools.cycle(PALETTE)):
        fig.add_scatter(x=list(range(len(r.passes) + 1)),
                        y=list(itertools.accumulate((len(p.new_tokens) for p in r.passes), initial=0)),
                        mode="lines+markers", name=name, line={"color": color}, marker={"size": 5})
    return _style(fig, "Cumulative tokens vs forward passes", "forward passes", "tokens generated")


def loss_figure(rows: list[dict]) -> go.Figure:
    """One line per loss in rows like {"step": 3, "loss": 2.1, "ar": 0.2, ...}."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k != "step"]
    fig = go.Figure([go.Scatter(x=[r["step"] for r in rows if k in r], y=[r[k] for r in rows if k in r],
                                mode="lines+markers", name=k, line={"color": color}, marker={"size": 4})
                     for k, color in zip(keys, itertools.cycle(PALETTE))])
    return _style(fig, "Training loss", "step", "loss")
