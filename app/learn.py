"""Learn tab: a short illustrated page on Jacobi decoding and consistency training."""
from functools import partial

import gradio as gr

from app.models import Models
from model_utils.errors import UserError
from model_utils.records import DecodeResult, Pass
from viz import legend_html, trajectory_figure

INTRO = """
## Jacobi decoding in one picture

A language model normally writes one token per forward pass: greedy **autoregressive (AR)** decoding feeds the
text so far and keeps the most likely next token. **Jacobi decoding** guesses a whole block of *n* future tokens
at once (random tokens from the prompt will do), feeds the block in one forward pass, and replaces every slot
*i* with the model's prediction after slot *i − 1*. Repeat until nothing changes: that block is the **fixed
point**.

**Why the fixed point equals greedy AR.** Slot 0 of each pass is already right (it follows the verified text).
Once slots 0…i−1 are right, the prediction that fills slot *i* is made from the right prefix, so it is exactly
the token greedy AR would pick; at the fixed point every slot equals the prediction from the slots before it,
which is the definition of the greedy continuation. Each pass makes *at least* one more token final, so Jacobi
is never slower than AR in passes, and in exact arithmetic it writes the very same text.

**Fast-forwarded and stationary tokens.** A pass usually fixes one token. When it fixes several consecutive
tokens at once, they were **fast-forwarded**. A token that is already right *while an earlier slot is still
wrong*, and stays right until the prefix reaches it, is **stationary**: the model guessed it before it could
know it. Both are what makes a pass worth more than one token.
"""

TRAINING = """
## What consistency training changes

An ordinary model gains little from Jacobi (≈1.05× in the paper): from a wrong prefix its guesses are mostly
wrong too. A **Consistency LLM (CLLM)** is fine-tuned on its own Jacobi trajectories so that *any* state of a
trajectory maps to the fixed point in as few passes as possible: the **consistency loss** pulls the prediction
from an intermediate, partly wrong state towards the prediction from the fixed point (global: straight to the
fixed point; local: to the next state), while an **AR loss** on the same text keeps the answers unchanged.
After training, many more tokens are fast-forwarded or stationary, so a pass fixes several tokens (the paper
reports 2.4×–3.4× faster generation at nearly the same quality). Try it in the **Fine-tune** tab, then watch the
difference in the **Jacobi stepper** with *compare* on.
"""

CANDIDATES = """
## Beyond plain Jacobi: candidate branches

Plain Jacobi guesses the tokens it has not verified from what the last pass predicted. Text often repeats
itself, though (a number from the question, a phrase from two lines up), so CLLM Lab also feeds **candidates**
beside the window in the same forward pass: what followed the last few verified tokens the last time they
occurred (an *n-gram* from the prompt or the answer), or guesses that earlier passes refuted at their place but
may fit now (*recycled*). Each branch sees the verified text and its own tokens only (a custom attention mask),
so the model checks every branch at once; the branch that verifies the most tokens wins and only its part stays
in the cache. Every kept token is still the model's own greedy prediction: the text does not change, only the
number of passes. A diamond ◆ marks the tokens a winning candidate guessed. The **adaptive window** then sizes
each pass from measured pass costs, so a model whose guesses rarely hold decodes close to AR speed.
"""

WORKED = """
### The worked example (block of 6, fixed point `a b c d e f`)
Pass 0 (the prefill) writes `a`. Pass 1 turns the random guess `a x y z w v` into `a b q d r f`: `b` is now final,
and `d` and `f` are already right ahead of the wrong `q` and `r`: stationary. Pass 2 gives `a b c d s f`: `c`
and `d` join the correct prefix in one pass (fast-forwarded). Pass 3 reaches the fixed point and pass 4 confirms
it. Colours compare each slot with the fixed point, as the paper's analysis does; a pass *commits* a token once
the model has verified it, which can be a pass later (hover a cell to see both). Press ▶ Play or drag the slider.
"""


def worked_example() -> DecodeResult:
    """Reference §2's example as a block-scheme record: stationary d and f, fixed point a b c d e f."""
    a, b, c, d, e, f, q, r, s, x, y, z, w, v = range(10, 24)
    text = dict(zip(range(10, 24), "a b c d e f q r s x y z w v".split()))
    passes = [Pass(0, -1, 0, [], [a], [a], 0.0, 7),
              Pass(1, 0, 0, [a, x, y, z, w, v], [a, b, q, d, r, f], [b], 0.0, 8),
              Pass(2, 0, 1, [b, q, d, r, f], [b, c, d, s, f], [c], 0.0, 9),
              Pass(3, 0, 2, [c, d, s, f], [c, d, e, f], [d, e], 0.0, 11),
              Pass(4, 0, 4, [e, f], [e, f], [f], 0.0, 12)]
    for p in passes:
        p.guess_text = [text[t] for t in p.guess]
    return DecodeResult("jacobi", "block", 6, [1, 2, 3, 4, 5, 6], [a, b, c, d, e, f], passes, "length",
                        "a b c d e f")


def live_example(models: Models, prompt: str, candidates: bool = False):
    """A short Jacobi run of the CLLM on a real question, drawn at its second pass (block scheme), or with
    candidate branches (sliding scheme) at the first pass a candidate won."""
    try:
        with models.turn("running the live example"):
            shape = dict(scheme="sliding", candidates=True, max_new_tokens=64) if candidates else dict(
                scheme="block", max_new_tokens=32)
            result = models.decode(models.settings.cllm, prompt, decoder="jacobi", block_size=8, **shape)
    except UserError as e:
        gr.Warning(str(e))
        return gr.skip(), f"⚠ {e}"
    won = [k for k, p in enumerate(result.passes) if p.winner]
    current = won[0] if won else 1
    status = "" if won or not candidates else "No candidate won a pass on this question: try one that repeats itself."
    figure = trajectory_figure(result, models.get(models.settings.cllm)[1], current=current, rows=8)
    return gr.Plot(figure, visible=True), status


def build(models: Models, concurrency_id: str) -> list[gr.Plot]:
    """The Learn tab; returns its animated plots (they need the frames fix)."""
    gr.Markdown(INTRO)
    gr.HTML(legend_html(candidates=True))
    gr.Markdown(WORKED)
    example = gr.Plot(trajectory_figure(worked_example(), current=1, rows=5, title="worked example"),
                      label="worked example", show_label=False, elem_id="learn-plot")
    gr.Markdown(TRAINING)
    gr.Markdown(CANDIDATES)
    with gr.Row():
        prompt = gr.Textbox("Sam has 4 bags with 6 marbles each. How many marbles does he have?",
                            label=f"a live example on {models.settings.cllm}", scale=4, elem_id="learn-prompt")
        run = gr.Button("Run it", elem_id="learn-run", scale=1)
        run_candidates = gr.Button("Run it with candidates", elem_id="learn-run-candidates", scale=1)
    status = gr.Markdown(label="status", elem_id="learn-status")
    live = gr.Plot(label="live example", show_label=False, elem_id="learn-live-plot", visible=False)
    run.click(partial(live_example, models), [prompt], [live, status], api_name="learn_run",
              concurrency_id=concurrency_id)
    run_candidates.click(partial(live_example, models, candidates=True), [prompt], [live, status],
                         api_name="learn_run_candidates", concurrency_id=concurrency_id)
    return [example, live]
