"""Jacobi stepper tab: one run drawn pass by pass (optionally beside a second model), summaries, exports."""
import json
import os
import shutil
import tempfile
from functools import partial

import gradio as gr

from app.inputs import whole_number
from app.models import Models, short_name
from model_utils.decoding import SCHEMES
from model_utils.errors import UserError
from model_utils.metrics import summarize
from model_utils.records import DecodeResult
from viz import (
    block_starts,
    cumulative_figure,
    legend_html,
    to_offline_html,
    tokens_per_pass_figure,
    trajectory_figure,
)

MOVES = ("prev_pass", "next_pass", "prev_block", "next_block")
EXPORTS = os.path.join(tempfile.gettempdir(), "cllm-lab-exports")  # Gradio keeps its own copy for an hour
KEEP_EXPORTS = 8


def figures(state: dict) -> tuple:
    """Both trajectory figures at the current pass (the second is hidden outside compare mode)."""
    k = state["current"]
    figs = [trajectory_figure(r, tokenizer, current=k, title=short_name(name))
            for name, r, tokenizer in zip(state["names"], state["runs"], state["tokenizers"])]
    main = figs[0]
    other = gr.Plot(figs[1], visible=True) if len(figs) > 1 else gr.Plot(None, visible=False)
    r = state["runs"][0]
    k = min(k, len(r.passes) - 1)
    where = f"Pass **{k}** of {len(r.passes) - 1} · block {max(r.passes[k].block, 0)}"
    return main, other, answer_text(r, state["tokenizers"][0], k), where


def answer_text(r: DecodeResult, tokenizer, k: int) -> str:
    """The answer as verified after pass k, and the whole answer once it is complete."""
    n = sum(len(p.new_tokens) for p in r.passes[: k + 1])
    text = tokenizer.decode(r.token_ids[:n], skip_special_tokens=True)
    return text if n == len(r.token_ids) else f"{text} …"


def run_labels(names: list[str]) -> list[str]:
    """Legend names of the runs; the same model twice gets numbered."""
    return [f"Jacobi ({short_name(n)})" + (f" #{i + 1}" if names.count(n) > 1 else "") for i, n in enumerate(names)]


def summary_table(names: list[str], runs: list[DecodeResult]) -> str:
    rows = ["| run | tokens | forward passes | tokens/forward | fast-forwarded | stationary | passes a candidate "
            "won | tokens/s |", "|---|---|---|---|---|---|---|---|"]
    for label, r in zip(run_labels(names), runs):
        s = summarize(r)
        won = sum(p.winner > 0 for p in r.passes)
        rows.append(f"| {label}, {r.scheme}, n={r.block_size} | {s['tokens']} | {s['forward_passes']} | "
                    f"{s['tokens_per_forward']:.2f} | {s['fast_forwarded']} | {s['stationary']} | {won} | "
                    f"{s['tokens_per_second']:.1f} |")
    return "\n".join(rows)


def prune_exports(keep: int = KEEP_EXPORTS) -> None:
    """Remove all but the newest `keep` export folders (each holds about 5 MB of inlined plotly.js)."""
    folders = sorted((os.path.join(EXPORTS, d) for d in os.listdir(EXPORTS)), key=os.path.getmtime, reverse=True)
    for folder in folders[keep:]:
        shutil.rmtree(folder, ignore_errors=True)


def export(names: list[str], runs: list[DecodeResult], main_fig) -> tuple[str, str]:
    """Write the offline HTML of the first trajectory and the JSON of every run (by label); return both paths."""
    os.makedirs(EXPORTS, exist_ok=True)
    folder = tempfile.mkdtemp(dir=EXPORTS)
    prune_exports()
    html_path, json_path = os.path.join(folder, "trajectory.html"), os.path.join(folder, "trajectory.json")
    with open(html_path, "w", encoding="utf-8") as f:
        f.write(to_offline_html(main_fig))
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump({label: r.to_dict() for label, r in zip(run_labels(names), runs)}, f)
    return html_path, json_path


def run(models: Models, prompt: str, name: str, compare: bool, other: str, block_size: int, scheme: str,
        max_new_tokens: int, candidates: bool = False):
    """One Jacobi run (two in compare mode) drawn at its last pass, with summaries and export files; with
    candidates, n-gram and recycled branches are verified beside the window (sliding scheme)."""
    try:
        names = [name, other] if compare else [name]
        if candidates and scheme != "sliding":
            raise UserError("Candidate branches work with the sliding scheme: choose sliding, or untick candidates.")
        with models.turn("drawing a trajectory"):
            options = dict(decoder="jacobi", block_size=whole_number(block_size, "block size"), scheme=scheme,
                           max_new_tokens=whole_number(max_new_tokens, "number of new tokens"),
                           candidates=bool(candidates))
            runs = [models.decode(n, prompt, **options) for n in names]
    except UserError as e:
        gr.Warning(str(e))
        return [gr.skip()] * 9 + [f"⚠ {e}"]
    state = {"names": names, "runs": runs, "tokenizers": [models.get(n)[1] for n in names],
             "current": max(len(r.passes) for r in runs) - 1}
    main, other_fig, answer, where = figures(state)
    labelled = dict(zip(run_labels(names), runs))
    html_path, json_path = export(names, runs, main)
    return (state, main, other_fig, tokens_per_pass_figure(labelled), cumulative_figure(labelled),
            summary_table(names, runs), html_path, json_path, answer, where)


def move(state: dict | None, how: str):
    """Server-side stepping: to the previous/next pass or to the start of the previous/next block."""
    if not state:
        gr.Warning("Run the stepper first.")
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), "⚠ Run the stepper first."
    k, last = state["current"], max(len(r.passes) for r in state["runs"]) - 1
    starts = block_starts(state["runs"][0])
    if how == "prev_pass":
        k = max(k - 1, 0)
    elif how == "next_pass":
        k = min(k + 1, last)
    elif how == "prev_block":
        k = max([s for s in starts if s < k], default=0)
    else:
        k = min([s for s in starts if s > k], default=last)
    state = state | {"current": k}
    return (state, *figures(state))


def build(models: Models, concurrency_id: str) -> tuple[list[gr.Dropdown], list[gr.Plot]]:
    """The stepper tab's components and events; returns its model dropdowns and its trajectory plots."""
    state = gr.State(None)
    with gr.Row():
        prompt = gr.Textbox(label="prompt", lines=2, scale=4, elem_id="stepper-prompt",
                            value="Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?")
        with gr.Column(scale=1):
            run_btn = gr.Button("Run", variant="primary", elem_id="stepper-run")
            compare = gr.Checkbox(label="compare with a second model", elem_id="stepper-compare")
    with gr.Row():
        name = gr.Dropdown(models.choices(), value=models.settings.cllm, label="model", allow_custom_value=True,
                           elem_id="stepper-model")
        other = gr.Dropdown(models.choices(), value=models.settings.base, label="second model (compare mode)",
                            allow_custom_value=True, elem_id="stepper-other-model")
        block = gr.Number(16, minimum=1, maximum=32, step=1, label="block size (1–32)", elem_id="stepper-block")
        scheme = gr.Radio(list(SCHEMES), value="block", label="scheme", elem_id="stepper-scheme")
        candidates = gr.Checkbox(False, label="candidate branches (sliding)", elem_id="stepper-candidates",
                                 info="n-gram and recycled guesses verified in the same pass; ◆ marks what they won")
        max_new = gr.Number(64, minimum=1, maximum=256, step=1, label="max new tokens (1–256)",
                            elem_id="stepper-max-new")
    with gr.Row():
        buttons = {how: gr.Button(label, size="sm", elem_id=f"stepper-{how.replace('_', '-')}")
                   for how, label in zip(MOVES, ("◀ pass", "pass ▶", "◀◀ block", "block ▶▶"))}
        where = gr.Markdown(label="status", elem_id="stepper-status")
    gr.HTML(legend_html(note="(hover a cell for its whole token and when it was verified)", candidates=True),
            elem_id="stepper-legend")
    answer = gr.Textbox(label="answer, as verified up to this pass", lines=2, interactive=False,
                        elem_id="stepper-answer")
    with gr.Column():  # stacked, so each grid gets the full width for its token texts
        plot = gr.Plot(label="trajectory", show_label=False, elem_id="trajectory-plot")
        other_plot = gr.Plot(label="trajectory (second model)", show_label=False, elem_id="trajectory-plot-compare",
                             visible=False)
    with gr.Row():
        per_pass = gr.Plot(label="tokens per pass", show_label=False, elem_id="tokens-per-pass-plot")
        cumulative = gr.Plot(label="cumulative tokens", show_label=False, elem_id="cumulative-plot")
    summary = gr.Markdown(label="summary", elem_id="stepper-summary")
    with gr.Row():
        html_file = gr.DownloadButton("Download offline HTML", elem_id="export-html")
        json_file = gr.DownloadButton("Download trajectory JSON", elem_id="export-json")
    run_btn.click(partial(run, models), [prompt, name, compare, other, block, scheme, max_new, candidates],
                  [state, plot, other_plot, per_pass, cumulative, summary, html_file, json_file, answer, where],
                  api_name="stepper_run", concurrency_id=concurrency_id)
    for how, button in buttons.items():
        button.click(partial(move, how=how), [state], [state, plot, other_plot, answer, where],
                     api_name=f"stepper_{how}")
    return [name, other], [plot, other_plot]
