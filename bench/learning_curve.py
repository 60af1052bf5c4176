"""Tokens per forward and quality against training: a base, then checkpoints of its consistency training.

python -m bench.learning_curve --run RUN_DIR [--base B] [--gsm8k N] [--freeform N] [--points N] [--dtype bfloat16]
    [--json OUT] [--plot OUT.png]

Every point decodes the same prompts with greedy sliding Jacobi, block 16, candidate branches on and the
adaptive window off (so tokens per forward are deterministic and do not depend on the machine): the first N
GSM8K test questions (exact match of `#### N`, answer format) and the first N free-form held-out prompts, up to
256 new tokens each. Loops (a phrase said over and over) are counted on both sets. The points are the base
(0 training prompts) and every checkpoint of the run, at the prompts it had trained on (steps x batch size).
"""
import argparse
import json
import os
import sys

import torch
from tqdm import tqdm

from bench.accuracy import score
from bench.data import check_json_out, prompt_of, read_items, write_json
from model_utils.cli import add_model_args, load_options, parser, positive_int, run_cli
from model_utils.decoding import decode_text
from model_utils.loading import PROJECT_ROOT, load_model
from model_utils.quality import has_loop

GSM8K = os.path.join(PROJECT_ROOT, "assets/data/gsm8k/test.jsonl")
FREEFORM = os.path.join(PROJECT_ROOT, "assets/data/freeform/heldout.jsonl")
DECODING = dict(decoder="jacobi", block_size=16, max_new_tokens=256, scheme="sliding", candidates=True,
                adaptive=False)


@torch.inference_mode()
def judge_nll(judge, prompt_ids: list[int], answer_ids: list[int]) -> float:
    """The judge (the base model) model's mean negative log-likelihood per token of an answer to a prompt."""
    if not answer_ids:
        return 0.0
    ids = torch.tensor([prompt_ids + answer_ids], device=judge.device)
    logits = judge(input_ids=ids).logits[0, len(prompt_ids) - 1:-1].float()
    return torch.nn.functional.cross_entropy(logits, ids[0, len(prompt_ids):]).item()


def measure(model, tokenizer, gsm8k: list[dict], freeform: list[dict], judge) -> dict:
    """Tokens per forward per set, GSM8K exact match and format, loop rates, and the base's mean negative
    log-likelihood of the answers (how far they moved from what the base itself would say)."""
    out = {}
    for name, items in (("gsm8k", gsm8k), ("freeform", freeform)):
        tokens = passes = 0
        scored, nll = [], []
        for item in tqdm(items, desc=name, unit="prompt", file=sys.stderr):
            result = decode_text(model, tokenizer, prompt_of(item), **DECODING)
            nll.append(judge_nll(judge, result.prompt_ids, result.token_ids))
            tokens, passes = tokens + len(result.token_ids), passes + len(result.passes)
            s = score(result.text, result.token_ids, item["answer"]) if "answer" in item else {
                "looped": has_loop(result.token_ids)}
            scored.append(s | {"output": result.text})
        out[name] = {"n": len(items), "tokens_per_forward": tokens / max(passes, 1), "tokens": tokens,
                     "loop_rate": sum(s["looped"] for s in scored) / len(items),
                     "base_nll": sum(nll) / len(nll)}
        if name == "gsm8k":
            out[name] |= {"exact_match": sum(s["correct"] for s in scored) / len(items),
                          "format_rate": sum(s["formatted"] for s in scored) / len(items)}
        out[name]["outputs"] = [s["output"] for s in scored]
    return out


def checkpoints(run: str) -> list[tuple[int, str]]:
    """(step, folder) of the run's checkpoints, oldest first, then the final model if the run finished."""
    folder = os.path.join(run, "checkpoints")
    found = sorted((int(d.split("-")[1]), os.path.join(folder, d)) for d in os.listdir(folder)
                   if d.startswith("checkpoint-")) if os.path.isdir(folder) else []
    finished = os.path.join(run, "finished.json")
    if os.path.isfile(finished):
        with open(finished) as f:
            steps = json.load(f)["steps"]
        if not found or found[-1][0] != steps:
            found.append((steps, run))
    return found


def run_curve(args: argparse.Namespace) -> dict:
    with open(os.path.join(args.run, "train_config.json")) as f:
        config = json.load(f)
    per_step = config["batch_size"] * config["grad_accum"] * config.get("processes", 1)
    gsm8k = read_items(GSM8K, args.gsm8k, need_answer=True)
    freeform = read_items(FREEFORM, args.freeform)
    points = []
    base = args.base or config["model"]
    judge, _ = load_model(base, **load_options(args))
    found = checkpoints(args.run)
    if args.points and len(found) > args.points:  # evenly spaced, the last one always
        found = [found[round(i * (len(found) - 1) / (args.points - 1))] for i in range(args.points)] \
            if args.points > 1 else found[-1:]
    for step, folder in [(0, base)] + found:
        model, tokenizer = load_model(folder, **load_options(args))
        print(f"step {step}: {folder}", file=sys.stderr)
        points.append({"step": step, "prompts_trained": step * per_step, "model": folder,
                       **measure(model, tokenizer, gsm8k, freeform, judge)})
        del model
    return {"config": DECODING | {"dtype": args.dtype, "run": args.run}, "points": points}


def plot(result: dict, path: str) -> None:
    from plotly.subplots import make_subplots

    x = [p["prompts_trained"] for p in result["points"]]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("tokens per forward pass", "quality"))
    for name, label in (("gsm8k", "GSM8K test"), ("freeform", "free-form held-out")):
        fig.add_scatter(x=x, y=[p[name]["tokens_per_forward"] for p in result["points"]], name=label,
                        mode="lines+markers", row=1, col=1)
    fig.add_scatter(x=x, y=[100 * p["gsm8k"]["format_rate"] for p in result["points"]], name="GSM8K answer format %",
                    mode="lines+markers", row=1, col=2)
    fig.add_scatter(x=x, y=[100 * p["gsm8k"]["exact_match"] for p in result["points"]], name="GSM8K exact match %",
                    mode="lines+markers", row=1, col=2)
    fig.add_scatter(x=x, y=[100 * (p["gsm8k"]["loop_rate"] + p["freeform"]["loop_rate"]) / 2
                            for p in result["points"]], name="loops %", mode="lines+markers", row=1, col=2)
    fig.update_xaxes(title_text="GSM8K train prompts trained on")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 100], title_text="%", row=1, col=2)
    fig.update_layout(width=1100, height=420, template="plotly_white", margin=dict(t=40, b=50, l=50, r=20))
    fig.write_image(path)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__)
    p.add_argument("--run", required=True, help="a training run's folder (python -m model_utils.train --out)")
    p.add_argument("--base", help="the start model (default: the run's --model)")
    p.add_argument("--gsm8k", type=positive_int, default=16, help="GSM8K test questions (default 16)")
    p.add_argument("--freeform", type=positive_int, default=16, help="free-form prompts (default 16)")
    p.add_argument("--points", type=positive_int, help="at most this many checkpoints, evenly spaced (default: all)")
    p.add_argument("--json", metavar="OUT")
    p.add_argument("--plot", metavar="PNG")
    add_model_args(p)
    args = p.parse_args(argv)

    def body() -> None:
        check_json_out(args.json)
        result = run_curve(args)
        for point in result["points"]:
            print(f"{point['prompts_trained']:>6} prompts: GSM8K {point['gsm8k']['tokens_per_forward']:.2f} tok/fwd "
                  f"EM {point['gsm8k']['exact_match']:.0%} format {point['gsm8k']['format_rate']:.0%} · free-form "
                  f"{point['freeform']['tokens_per_forward']:.2f} tok/fwd · loops {point['gsm8k']['loop_rate']:.0%}"
                  f"/{point['freeform']['loop_rate']:.0%} · base NLL of the answers {point['gsm8k']['base_nll']:.3f}"
                  f"/{point['freeform']['base_nll']:.3f}")
        write_json(args.json, result)
        if args.plot:
            plot(result, args.plot)
    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
