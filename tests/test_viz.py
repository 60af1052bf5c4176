"""viz/ on hand-made records: cell states follow the reference definitions, one frame per pass."""
import json

import plotly.graph_objects as go
from helpers import assert_offline_html

from model_utils.decoding import decode
from model_utils.records import DecodeResult, Pass
from model_utils.tiny_models import tiny_model, tiny_tokenizer
from viz import (
    COLORS,
    STATES,
    block_starts,
    cell_grid,
    cumulative_figure,
    loss_figure,
    to_offline_html,
    tokens_per_pass_figure,
    trajectory_figure,
)

A, B, C, D, E, F, Q, R, S, X, Y, Z, W, V = range(10, 24)
NAMES = dict(zip(range(10, 24), "a b c d e f q r s x y z w v".split()))


def worked_example() -> DecodeResult:
    """Reference §2: fixed point a b c d e f; states a b q d r f, a b c d s f, a b c d e f."""
    passes = [Pass(0, 0, 0, [A, X, Y, Z, W, V], [A, B, Q, D, R, F], [A, B], 0.1, 8),
              Pass(1, 0, 0, [A, B, Q, D, R, F], [A, B, C, D, S, F], [C, D], 0.1, 10),
              Pass(2, 0, 0, [A, B, C, D, S, F], [A, B, C, D, E, F], [E, F], 0.1, 12)]
    for p in passes:
        p.guess_text = [NAMES[t] for t in p.guess]
    return DecodeResult("jacobi", "block", 6, [1, 2, 3], [A, B, C, D, E, F], passes, "length")


def states(result: DecodeResult) -> list[str]:
    return [" ".join("." if c is None else c.state[:2] for c in row) for row in cell_grid(result)]


def test_worked_example_cells_match_the_reference():
    # fa = fast-forwarded, fi = final, st = stationary, ch = changing
    assert states(worked_example()) == ["fa fa ch st ch st",
                                        "fi fi fa fa ch st",
                                        "fi fi fi fi fa fa"]
    stationary = {(k, c.pos) for k, row in enumerate(cell_grid(worked_example())) for c in row
                  if c.state == "stationary"}
    assert {pos for _, pos in stationary} == {3, 5}  # d and f


def test_a_token_that_changes_again_is_not_stationary():
    # c is right at pass 0, wrong at pass 1: changing both times; d right from pass 1 on: stationary
    a, b, c, d, x, y, z = 1, 2, 3, 4, 5, 6, 7
    passes = [Pass(0, 0, 0, [a, x, x, x], [a, x, c, y], [a], 0.0, 1),
              Pass(1, 0, 0, [a, x, c, y], [a, b, z, d], [b], 0.0, 2),
              Pass(2, 0, 0, [a, b, z, d], [a, b, c, d], [c, d], 0.0, 4)]
    result = DecodeResult("jacobi", "block", 4, [9], [a, b, c, d], passes, "length")
    assert states(result) == ["fa ch ch ch", "fi fa ch st", "fi fi fa fa"]


def test_figure_has_one_frame_per_pass_and_a_fixed_legend():
    result = worked_example()
    fig = trajectory_figure(result, current=1)
    assert [f.name for f in fig.frames] == ["0", "1", "2"]
    assert len(fig.layout.sliders[0].steps) == 3 and fig.layout.sliders[0].active == 1
    legend = [t for t in fig.data if t.type == "scatter" and t.showlegend]
    assert [t.marker.color for t in legend] == [COLORS[s] for s in STATES]  # no candidate mark without candidates
    heat = fig.data[0]
    assert list(heat.text[1]) == ["a", "b", "c", "d", "s", "f"]  # the figure opens at pass 1
    assert list(heat.z[1]) == list(STATES.index(s) for s in ("final", "final", "fast-forwarded", "fast-forwarded",
                                                          "changing", "stationary"))
    assert "id 13" in heat.hovertext[1][3] and "committed by pass 1" in heat.hovertext[1][3]


def test_frames_show_the_last_rows_up_to_their_pass():
    result = decode(tiny_model("llama"), [1, 17, 33, 5], block_size=4, max_new_tokens=20, scheme="sliding")
    fig = trajectory_figure(result, rows=5)
    assert len(fig.frames) == len(result.passes)
    last = fig.frames[-1].data[0]
    assert list(last.y) == list(range(len(result.passes) - 5, len(result.passes)))
    assert list(fig.frames[2].data[0].y) == [0, 1, 2]


def test_token_text_comes_from_the_tokenizer_and_is_escaped():
    tokenizer = tiny_tokenizer()
    result = decode(tiny_model("llama"), [1, 17, 33, 5], block_size=4, max_new_tokens=8, tokenizer=tokenizer)
    fig = trajectory_figure(result, tokenizer)
    texts = {t for row in fig.data[0].text for t in row if t}
    assert texts and all(t.startswith("w") or t.startswith("&lt;") for t in texts)


def test_block_starts_follow_the_block_scheme():
    result = decode(tiny_model("llama"), [1, 17, 33, 5], block_size=4, max_new_tokens=12, scheme="block")
    starts = block_starts(result)
    assert starts[0] == 0 and starts[1] == 1
    assert [result.passes[k].block for k in starts] == [-1, 0, 1, 2]


def test_summary_figures():
    result = worked_example()
    bars = tokens_per_pass_figure({"cllm": result})
    assert list(bars.data[0].y) == [2, 2, 2]
    cum = cumulative_figure({"cllm": result})
    assert cum.data[0].name.startswith("AR") and list(cum.data[1].y) == [0, 2, 4, 6]
    loss = loss_figure([{"step": 1, "loss": 3.0, "ar": 0.2}, {"step": 2, "loss": 2.0, "ar": 0.1}])
    assert [t.name for t in loss.data] == ["loss", "ar"] and list(loss.data[0].y) == [3.0, 2.0]


def test_offline_html_inlines_plotly_and_the_frames(tmp_path):
    page = to_offline_html(trajectory_figure(worked_example()))
    assert_offline_html(page)
    assert "addFrames" in page


def test_figures_round_trip_through_json():
    fig = trajectory_figure(worked_example())
    again = go.Figure(json.loads(fig.to_json()))
    assert len(again.frames) == 3


def test_a_long_token_is_cut_in_its_cell_and_whole_on_hover():
    result = decode(tiny_model("llama"), [1, 5, 6], decoder="jacobi", block_size=4, max_new_tokens=6)
    for p in result.passes:
        p.guess_text = [f"a-very-long-token-{t}" for t in p.guess]
    heat = trajectory_figure(result).data[0]
    cells = [(text, hover) for row_t, row_h in zip(heat.text, heat.hovertext) for text, hover in zip(row_t, row_h)
             if text]
    assert cells and all(len(text) <= 9 and text.endswith("…") for text, _ in cells)
    assert all("a-very-long-token-" in hover.split(" (id")[0] and len(hover.split(" (id")[0]) > 18
               for _, hover in cells)
