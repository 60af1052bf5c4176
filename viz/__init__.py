"""Plain functions from decoding records to Plotly figures, usable in a notebook or the app."""
from viz.export import to_offline_html
from viz.legend import legend_html
from viz.summary import cumulative_figure, loss_figure, tokens_per_pass_figure
from viz.trajectory import COLORS, LABELS, STATES, block_starts, cell_grid, trajectory_figure

__all__ = ["COLORS", "LABELS", "STATES", "block_starts", "cell_grid", "cumulative_figure", "legend_html", "loss_figure",
           "to_offline_html", "tokens_per_pass_figure", "trajectory_figure"]
