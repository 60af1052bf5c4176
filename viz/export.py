"""Figures as files that open anywhere, without a network."""
import plotly.graph_objects as go


def to_offline_html(fig: go.Figure) -> str:
    """A self-contained HTML page (plotly.js inlined, about 5 MB) that does not start playing by itself."""
    return fig.to_html(include_plotlyjs=True, full_html=True, auto_play=False)
