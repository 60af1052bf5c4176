"""Charts of benchmark results: bars of tokens/s and tokens per forward pass per decoder (speed JSONs),
exact match, format and collapse rates (accuracy JSONs), several files side by side; or lines of
tokens/s against batch size and a pass's cost against its width (throughput JSONs, drawn on their own).

python -m bench.plot RESULT.json [MORE.json ...] [--out FILE.png|FILE.html]

PNG goes through kaleido, which needs a Chromium binary; if that export fails, HTML is written instead.
"""
import argparse
import json
import os
import sys

import plotly.graph_objects as go
from plotly.colors import DEFAULT_PLOTLY_COLORS
from plotly.subplots import make_subplots

from model_utils.cli import parser, run_cli
from model_utils.errors import UserError
from model_utils.loading import first_line


def load(path: str) -> dict:
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError as e:
        raise UserError(f"Cannot read {path!r}: {e.strerror}.") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{path!r} is not valid JSON ({e.msg}).") from e
    if not isinstance(data, dict) or not ("decoders" in data or "exact_match" in data or "runs" in data):
        raise UserError(f"{path!r} is not a bench.speed, bench.accuracy or bench.throughput result.")
    return data


def accuracy_bars(result: dict) -> dict[str, float]:
    bars = {"exact match": result["exact_match"], "format": result["format_rate"],
            "collapse": result["collapse_rate"]}
    return bars | {f"exact match ({k})": v["exact_match"] for k, v in result.get("by_seen", {}).items()}


DECODER_NAMES = {"ar": "AR", "jacobi": "Jacobi", "cllm": "CLLM", "generate": "generate", "prompt": "prompt",
                 "lookup": "lookup", "cand": "+candidates", "adapt": "+adaptive"}


def decoder_label(key: str) -> str:
    """jacobi_cllm -> "Jacobi CLLM", jacobi_cand_adapt_base -> "Jacobi +candidates +adaptive base"."""
    return " ".join(DECODER_NAMES.get(word, word) for word in key.split("_"))


def result_label(stem: str, result: dict) -> str:
    """A legend name a reader understands: which prompts, how many, which dtype (the file name otherwise)."""
    config = result.get("config", {})
    prompts = str(config.get("prompts", ""))
    where = ("GSM8K test" if "gsm8k" in prompts else "held-out" if "heldout" in prompts
             else os.path.splitext(os.path.basename(prompts))[0] if prompts else stem)
    n = config.get("n_prompts") or result.get("n")
    parts = [where + (f" ({n})" if n else ""), config.get("dtype")]
    if "exact_match" in result and config.get("model"):
        parts.insert(0, os.path.basename(str(config["model"]).rstrip("/")))
    return " · ".join(p for p in parts if p)


def figure(results: dict[str, dict]) -> go.Figure:
    """Full-width bar charts, one below the other: tokens/s and tokens per forward pass (speed results),
    then accuracy; one colour per file, named in the legend by its prompts and dtype."""
    speed = {k: v for k, v in results.items() if "decoders" in v}
    accuracy = {k: v for k, v in results.items() if "decoders" not in v}
    rows = (["tokens per second (label: speedup vs the faster AR on the base)", "tokens per forward pass"]
            if speed else []) + (["accuracy"] if accuracy else [])
    fig = make_subplots(rows=len(rows), cols=1, subplot_titles=rows, vertical_spacing=0.12)
    for i, (label, result) in enumerate(results.items()):
        color = DEFAULT_PLOTLY_COLORS[i % len(DEFAULT_PLOTLY_COLORS)]
        style = dict(name=label, legendgroup=label, marker_color=color)
        if label in speed:
            d = result["decoders"]
            names = [decoder_label(k) for k in d]
            fig.add_bar(x=names, y=[v["tokens_per_second"] for v in d.values()],
                        text=[f"{v['speedup']:.2f}x" for v in d.values()], row=1, col=1, **style)
            fig.add_bar(x=names, y=[v["tokens_per_forward"] for v in d.values()], row=2, col=1,
                        text=[f"{v['tokens_per_forward']:.2f}" for v in d.values()], showlegend=False, **style)
        else:
            bars = accuracy_bars(result)
            fig.add_bar(x=list(bars), y=list(bars.values()), text=[f"{v:.0%}" for v in bars.values()],
                        row=len(rows), col=1, showlegend=not speed or label not in speed, **style)
    if accuracy:
        fig.update_yaxes(range=[0, 1.12], tickformat=".0%", row=len(rows), col=1)
    fig.update_traces(textposition="outside", textangle=0, cliponaxis=False, selector={"type": "bar"})
    fig.update_xaxes(tickangle=0, tickfont_size=13)
    fig.update_layout(barmode="group", height=380 * len(rows) + 80, width=1300, template="plotly_white",
                      uniformtext={"minsize": 11, "mode": "show"}, font={"size": 13},
                      legend={"orientation": "h", "x": 0, "y": 1.09, "yanchor": "bottom"}, margin={"t": 130})
    return fig


def throughput_figure(results: dict[str, dict]) -> go.Figure:
    """Tokens/s against batch size per decoder, and median ms per step against tokens fed; a dash per file."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=["tokens per second against batch size",
                                                        "ms per forward step against tokens fed to it"])
    dashes = ["solid", "dash", "dot", "dashdot"]
    for i, (label, result) in enumerate(results.items()):
        dash = dashes[i % len(dashes)]
        decoders = list(dict.fromkeys(r["decoder"] for r in result["runs"]))
        for j, decoder in enumerate(decoders):
            runs = [r for r in result["runs"] if r["decoder"] == decoder]
            name = decoder if len(results) == 1 else f"{label}: {decoder}"
            fig.add_scatter(x=[r["batch_size"] for r in runs], y=[r["tokens_per_second"] for r in runs], name=name,
                            mode="lines+markers", line=dict(color=DEFAULT_PLOTLY_COLORS[j], dash=dash), row=1, col=1)
        cost = result["pass_ms_by_tokens_fed"]
        fig.add_scatter(x=[int(w) for w in cost], y=list(cost.values()), name=f"{label}: ms per step",
                        mode="lines+markers", line=dict(color="gray", dash=dash), row=1, col=2)
    fig.update_xaxes(type="log", dtick=0.30103, title="rows in the batch", row=1, col=1)
    fig.update_xaxes(type="log", dtick=0.30103, title="tokens fed to the step (rows × window)", row=1, col=2)
    fig.update_yaxes(title="tokens/s", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="ms", rangemode="tozero", row=1, col=2)
    fig.update_layout(height=460, width=1100, template="plotly_white")
    return fig


def save(fig: go.Figure, out: str) -> str:
    """Write HTML or an image; where the image export fails, say why in one line and write HTML."""
    if out.endswith(".html"):
        fig.write_html(out, include_plotlyjs=True)
        return out
    try:
        fig.write_image(out)
        return out
    except Exception as e:  # kaleido raises several kinds of error when it finds no working Chromium
        html = os.path.splitext(out)[0] + ".html"
        print(f"image export failed ({first_line(e)}): writing {html} instead", file=sys.stderr)
        fig.write_html(html, include_plotlyjs=True)
        return html


def run(args: argparse.Namespace) -> None:
    loaded = [(os.path.splitext(os.path.basename(p))[0], load(p)) for p in args.results]
    labels = [result_label(stem, result) for stem, result in loaded]
    if len(set(labels)) < len(labels):  # the same prompts and dtype: the file names tell them apart
        labels = [f"{stem}: {label}" for (stem, _), label in zip(loaded, labels)]
    results = dict(zip(labels, (result for _, result in loaded)))
    if len(results) < len(args.results):
        raise UserError("Two result files share a name: rename one so the legend can tell them apart.")
    out = args.out or os.path.splitext(args.results[0])[0] + ".png"
    throughput = [label for label, r in results.items() if "runs" in r]
    if throughput and len(throughput) < len(results):
        raise UserError("bench.throughput results are drawn on their own: plot them apart from speed and "
                        "accuracy results.")
    print(save(throughput_figure(results) if throughput else figure(results), out))


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("results", nargs="+", metavar="RESULT.json",
                   help="bench.speed, bench.accuracy or bench.throughput --json files")
    p.add_argument("--out", help="FILE.png (or .svg, .pdf) or FILE.html; default: the first result's name .png")
    args = p.parse_args(argv)
    return run_cli(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
