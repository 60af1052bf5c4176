"""Chat tab: two panels answer the same prompt in a fair race, one forward pass each in turn."""
import html
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

import gradio as gr

from app.inputs import real_number, whole_number
from app.models import Models, short_name
from model_utils.cli import MAX_SEED
from model_utils.decoding import SCHEMES, check_inputs, decode_passes, to_result
from model_utils.decoding import speedups as fastest
from model_utils.errors import UserError
from model_utils.loading import PROJECT_ROOT, encode_prompt, eos_ids
from model_utils.metrics import summarize
from model_utils.records import DecodeResult, Pass
from model_utils.streaming import TextStream
from viz import legend_html

MAX_PROMPT_CHARS = 4000
MAX_BLOCK, MAX_NEW = 64, 512
MARKDOWN = re.compile(r"([\\`*_{}\[\]#+\-.!|~$])")


def escape(text: str) -> str:
    """Model text shown literally inside a markdown chat bubble."""
    return MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


def highlighted(chunks: list[tuple[str, int]]) -> str:
    """Chat HTML where the text of a pass that made several tokens final is highlighted."""
    out = []
    for text, n in chunks:
        if n < 2:
            out.append(escape(text))
            continue
        pieces = text.split("\n")
        out.append("\n".join(f'<span class="ff" title="{n} tokens in one forward pass">{escape(p)}</span>'
                             if p else "" for p in pieces))
    return "".join(out)


@dataclass
class Side:
    """One panel of the race: its pass generator and what it has made final so far."""
    decoder: str
    scheme: str | None
    block_size: int
    prompt_ids: list[int]
    eos: set[int]
    stream: TextStream
    passes_left: Iterator[Pass]
    requested: int = 0  # max new tokens asked for
    room: int = 0  # max new tokens the model's context leaves after the prompt (≤ requested)
    passes: list[Pass] = field(default_factory=list)
    chunks: list[tuple[str, int]] = field(default_factory=list)  # text of each pass, tokens it made final
    speedups: dict = field(default_factory=dict)  # candidates and adaptive, as decode_passes took them
    done: bool = False

    @property
    def tokens(self) -> list[int]:
        return self.stream.tokens

    @property
    def text(self) -> str:
        return self.stream.text

    def step(self) -> None:
        """Run one forward pass (or notice the run has ended)."""
        p = next(self.passes_left, None)
        if p is None:
            self.done = True
            return
        self.passes.append(p)
        added = self.stream.add(p.new_tokens)
        if added is None:  # decoding rewrote earlier text: restart the chunking from the whole text
            self.chunks = [(self.stream.text, 1)]
        elif added:
            self.chunks.append((added, len(p.new_tokens)))

    def result(self) -> DecodeResult:
        return to_result(self.passes, self.prompt_ids, decoder=self.decoder, scheme=self.scheme,
                         block_size=self.block_size, eos_ids=self.eos)


DECODERS = {"AR": "ar", "Jacobi": "jacobi"}  # the panels' labels of the library's decoders


def start_side(models: Models, name: str, decoder: str, block_size: int, scheme: str,
               messages: list[dict], max_new_tokens: int, sampling: dict | None = None, speedups: bool = True) -> Side:
    """One panel's run, its prefill done; sampling: temperature, top_k, top_p and seed (None: greedy); speedups:
    the fastest measured setting of candidates and the adaptive window, where it applies (greedy sliding Jacobi)."""
    if decoder not in DECODERS:
        raise UserError(f"Unknown decoder {decoder!r}: choose AR or Jacobi.")
    model, tokenizer = models.get(name)
    prompt_ids = encode_prompt(tokenizer, messages)
    eos = eos_ids(model, tokenizer)
    shape = dict(decoder=DECODERS[decoder], block_size=whole_number(block_size, "block size"), scheme=scheme)
    room = check_inputs(model, prompt_ids, max_new_tokens, shape["block_size"])
    extra = fastest(speedups and shape["decoder"] == "jacobi" and scheme == "sliding"
                    and not (sampling or {}).get("temperature"))
    side = Side(**shape, prompt_ids=prompt_ids, eos=eos, stream=TextStream(tokenizer), requested=max_new_tokens,
                room=room, speedups=extra,
                passes_left=decode_passes(model, prompt_ids, max_new_tokens=max_new_tokens, eos_ids=eos, **shape,
                                          **(sampling or {}), **extra))
    if side.decoder == "ar":
        side.scheme, side.block_size = None, 1
    side.step()  # the prefill runs now, so bad input (a prompt over the context) is refused before streaming
    return side


def tokens_per_second(r: DecodeResult) -> float:
    return len(r.token_ids) / r.seconds if r.seconds > 0 else 0.0


MIN_TIMED_TOKENS, MIN_TIMED_SECONDS = 32, 0.5  # below either, a speed ratio is mostly noise


def speed_ratio(right: DecodeResult, left: DecodeResult) -> str:
    """The race's one speed figure: tokens/s of the right panel ÷ the left's, marked when too short to trust."""
    if tokens_per_second(left) <= 0:
        return ""
    ratio = tokens_per_second(right) / tokens_per_second(left)
    short = min(len(right.token_ids), len(left.token_ids)) < MIN_TIMED_TOKENS or min(
        right.seconds, left.seconds) < MIN_TIMED_SECONDS
    note = " (too short to time reliably)" if short else ""
    return f" · speed **{ratio:.2f}×** the left panel's tokens/s{note}"


def metrics_line(side: Side, other: Side, right: bool) -> str:
    """Tokens per forward first (it does not depend on the machine), then tokens, passes, tokens/s and own time;
    the right panel also gives the race's speed ratio. The CLLM counts once the run is done."""
    r, o = side.result(), other.result()
    parts = "".join(f" + {k}" for k, on in side.speedups.items() if on)
    line = (f"**{'AR' if r.decoder == 'ar' else f'Jacobi ({r.scheme}{parts}, n={r.block_size})'}** · "
            f"**{len(r.token_ids) / max(len(r.passes), 1):.2f} tokens/forward** · "
            f"{len(r.token_ids)} tokens · {len(r.passes)} forward passes · {tokens_per_second(r):.1f} tokens/s · "
            f"{r.seconds:.2f} s{speed_ratio(r, o) if right else ''}")
    if not side.done:
        return line + " · streaming…"
    s = summarize(r)
    won = sum(p.winner > 0 for p in r.passes)
    branches = f" · {won} pass(es) won by a candidate" if side.speedups.get("candidates") else ""
    return line + (f" · {s['fast_forwarded']} fast-forwarded · {s['stationary']} stationary{branches} · "
                   f"{end_of(side)}")


def end_of(side: Side) -> str:
    """Why a finished run ended: its EOS, the max new tokens, or the model's context."""
    if not side.text.strip():
        return "⚠ empty answer: the model ended at once (its first token was EOS)"
    if side.tokens and side.tokens[-1] in side.eos:
        return "✔ done"
    if side.room < side.requested:
        return f"✂ cut by the model's context after {len(side.tokens)} tokens (the prompt fills the rest)"
    return f"■ reached max new tokens ({side.requested})"


def template_text(side: Side) -> str:
    """What the model was fed: the prompt after its chat template, as text."""
    return side.stream.tokenizer.decode(side.prompt_ids)


def match_line(left: Side, right: Side, same_model: bool = True) -> str:
    """A clear mark when the two outputs are identical token for token, else where they first differ (and, for
    two different models, why that is expected)."""
    a, b = left.tokens, right.tokens
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    done = left.done and right.done
    if n < min(len(a), len(b)) or (done and a != b):
        def show(side: Side) -> str:
            return repr(side.stream.tokenizer.decode(side.tokens[n:n + 1])) if n < len(side.tokens) else "the end"
        why = "" if same_model else (
            " Expected here: the panels run two different models (a CLLM is its base fine-tuned, so it writes its "
            "own answer). Jacobi reproduces AR *of the same model* exactly: choose one model on both sides to see it.")
        return f"≠ **The outputs first differ at token {n}** (left {show(left)}, right {show(right)}).{why}"
    if done:
        return f"✔ **Identical outputs, token for token** ({len(a)} tokens)."
    return f"… identical so far ({n} tokens)."


def bubbles(turns: list[dict], side: str) -> list[dict]:
    msgs = []
    for t in turns:
        msgs += [{"role": "user", "content": escape(t["user"])},
                 {"role": "assistant", "content": t[f"{side}_html"]}]
    return msgs


def history(turns: list[dict], side: str, prompt: str) -> list[dict]:
    """The messages one panel's model sees: its own earlier answers, then the new prompt."""
    msgs = []
    for t in turns:
        msgs += [{"role": "user", "content": t["user"]}, {"role": "assistant", "content": t[side]}]
    return msgs + [{"role": "user", "content": prompt}]


def race(models: Models, prompt: str, turns: list[dict], l_model: str, l_decoder: str, l_block: int,
         l_scheme: str, r_model: str, r_decoder: str, r_block: int, r_scheme: str, max_new_tokens: int,
         temperature=0.0, top_k=0, top_p=1.0, seed=0, l_speedups=True, r_speedups=True):
    """Stream both panels pass by pass; each decoder is timed on its own passes only (greedy at temperature 0)."""
    try:
        with models.turn("streaming a chat"):
            prompt = prompt if isinstance(prompt, str) else ""
            if len(prompt) > MAX_PROMPT_CHARS:
                raise UserError(f"The prompt is {len(prompt)} characters long; the limit is {MAX_PROMPT_CHARS}.")
            if not prompt.strip():
                raise UserError("The prompt is empty: type something to continue.")
            sampling = dict(temperature=real_number(temperature, "temperature"), top_k=whole_number(top_k, "top-k"),
                            top_p=real_number(top_p, "top-p"), seed=whole_number(seed, "seed"))
            if not 0 <= sampling["seed"] <= MAX_SEED:
                raise UserError(f"The seed must be from 0 to {MAX_SEED} (got {sampling['seed']}).")
            left = start_side(models, l_model, l_decoder, l_block, l_scheme, history(turns, "left", prompt),
                              whole_number(max_new_tokens, "number of new tokens"), sampling, bool(l_speedups))
            right = start_side(models, r_model, r_decoder, r_block, r_scheme, history(turns, "right", prompt),
                               whole_number(max_new_tokens, "number of new tokens"), sampling, bool(r_speedups))
            turns = turns + [{}]
            template = (f"**left** ({len(left.prompt_ids)} tokens)\n```text\n{template_text(left)}\n```\n"
                        f"**right** ({len(right.prompt_ids)} tokens)\n```text\n{template_text(right)}\n```")
            notes = " ".join(f"✂ {name}: the model's context leaves room for {side.room} new tokens, not "
                             f"{side.requested}." for name, side in (("Left", left), ("Right", right))
                             if side.room < side.requested)
            if sampling["temperature"] > 0:
                notes += (f" 🎲 Sampling at temperature {sampling['temperature']:g} (seed {sampling['seed']}): each "
                          f"panel draws its own answer, so the two can differ; Jacobi's answers follow exactly the "
                          f"distribution of AR sampling.")
            while True:
                turns[-1] = {"user": prompt, "left": left.text, "right": right.text,
                             "left_html": highlighted(left.chunks), "right_html": highlighted(right.chunks)}
                yield (bubbles(turns, "left"), bubbles(turns, "right"), metrics_line(left, right, right=False),
                       metrics_line(right, left, right=True), template,
                       match_line(left, right, same_model=l_model == r_model), turns, notes.strip())
                if left.done and right.done:
                    return
                for side in (left, right):
                    if not side.done:
                        side.step()
    except UserError as e:
        message = f"{e} Press Clear to start a new conversation." if turns and "context" in str(e) else str(e)
        gr.Warning(message)
        yield [gr.skip()] * 7 + [f"⚠ {message}"]


def stopped(left: str, right: str) -> tuple[str, str]:
    """The metric lines after Stop: a run that was still streaming says it was stopped."""
    return tuple(line.replace("streaming…", "■ stopped") for line in (left or "", right or ""))


def new_conversation() -> tuple:
    """Empty history, bubbles, metrics, match line and template."""
    return [], [], [], "", "", "", ""


def build(models: Models, concurrency_id: str) -> list[gr.Dropdown]:
    """The Chat tab's components and events; returns its model dropdowns."""
    turns = gr.State([])
    settings, chats, metrics, speedups = [], [], [], []
    with gr.Row():
        for side, name, decoder in (("left", models.settings.base, "AR"), ("right", models.settings.cllm, "Jacobi")):
            with gr.Column():
                with gr.Row():
                    model = gr.Dropdown(models.choices(), value=name, label=f"{side} model", allow_custom_value=True,
                                        elem_id=f"model-{side}", scale=3)
                    dec = gr.Radio(["AR", "Jacobi"], value=decoder, label="decoder", elem_id=f"decoder-{side}",
                                   scale=2)
                with gr.Row(visible=decoder == "Jacobi") as jacobi_settings:
                    block = gr.Number(16, minimum=1, maximum=MAX_BLOCK, step=1, label=f"block size (1–{MAX_BLOCK})",
                                      elem_id=f"block-{side}")
                    scheme = gr.Radio(list(SCHEMES), value="sliding", label="scheme", elem_id=f"scheme-{side}")
                    speedups.append(gr.Checkbox(True, label="candidates + adaptive width (greedy, sliding)",
                                                elem_id=f"speedups-{side}",
                                                info="verify n-gram and recycled guesses in the same pass; "
                                                     "size the window by measured pass costs"))
                dec.change(lambda d: gr.Row(visible=d == "Jacobi"), [dec], [jacobi_settings], queue=False,
                           api_visibility="private")
                chats.append(gr.Chatbot(label=f"{side}", elem_id=f"chat-{side}", height=380, latex_delimiters=[],
                                        buttons=["copy"]))
                metrics.append(gr.Markdown(label=f"{side} metrics", elem_id=f"metrics-{side}"))
                settings.append([model, dec, block, scheme])
    gr.HTML(legend_html(["fast-forwarded"], note="in the answers: text that became final several tokens in one "
                                                 "forward pass; plain text came one token per pass"),
            elem_id="chat-legend")
    match = gr.Markdown(label="match", elem_id="chat-match")
    with gr.Row():
        same = gr.Button(f"Same model both sides: {short_name(models.settings.cllm)} with AR vs with Jacobi",
                         size="sm", elem_id="same-model", scale=0)
        race_pair = gr.Button(f"Base vs CLLM: {short_name(models.settings.base)} with AR vs "
                              f"{short_name(models.settings.cllm)} with Jacobi", size="sm", elem_id="base-vs-cllm",
                              scale=0)
    pairs = {same: (models.settings.cllm, models.settings.cllm), race_pair: (models.settings.base,
                                                                              models.settings.cllm)}
    for button, (left_model, right_model) in pairs.items():
        button.click(lambda a=left_model, b=right_model: (a, "AR", b, "Jacobi"), None,
                     [settings[0][0], settings[0][1], settings[1][0], settings[1][1]], queue=False,
                     api_visibility="private")
    with gr.Accordion("What the models are fed (the prompt after each model's chat template)", open=False):
        template = gr.Markdown(label="chat template", elem_id="chat-template")
    prompt = gr.Textbox(label="prompt", lines=3, elem_id="prompt",
                        placeholder="Ask anything, or a grade-school maths question…")
    with gr.Row():
        send = gr.Button("Send", variant="primary", elem_id="send")
        stop = gr.Button("Stop", variant="stop", elem_id="stop")
        clear = gr.Button("Clear", elem_id="clear")
        max_new = gr.Number(256, minimum=1, maximum=MAX_NEW, step=1, label=f"max new tokens (1–{MAX_NEW})",
                            elem_id="max-new-tokens")
    with gr.Accordion("Sampling (temperature 0 is greedy: Jacobi then reproduces AR exactly)", open=False):
        with gr.Row():
            temperature = gr.Number(0.0, minimum=0, maximum=5, label="temperature (0–5)", elem_id="temperature")
            top_k = gr.Number(0, minimum=0, maximum=10_000, step=1, label="top-k (0: off)", elem_id="top-k")
            top_p = gr.Number(1.0, minimum=0.01, maximum=1, label="top-p (1: off)", elem_id="top-p")
            seed = gr.Number(0, minimum=0, step=1, label="seed", elem_id="seed")
    status = gr.Markdown(label="status", elem_id="chat-status")
    for path, label in EXAMPLE_SETS:
        questions = example_questions(path)
        if questions:
            gr.Examples([[q] for q in questions], inputs=[prompt], label=label)
    inputs = [prompt, turns, *settings[0], *settings[1], max_new, temperature, top_k, top_p, seed, *speedups]
    outputs = [chats[0], chats[1], metrics[0], metrics[1], template, match, turns, status]
    event = gr.on([send.click, prompt.submit], partial(race, models), inputs, outputs, api_name="chat",
                  concurrency_id=concurrency_id, show_progress="hidden",
                  api_description="One chat turn in both panels, streamed. The conversation so far is kept per "
                                  "client session (each gradio_client Client is one): call /clear to start anew.")
    stop.click(stopped, metrics, metrics, cancels=[event], api_name="stop", queue=False)
    # Clear also stops a chat still streaming, or it would write its turn back into the new conversation
    clear.click(new_conversation, None, [turns, *chats, *metrics, match, template], api_name="clear", queue=False,
                cancels=[event])
    for chatbot in chats:  # the bubbles' own trash button starts a new conversation too
        chatbot.clear(new_conversation, None, [turns, *chats, *metrics, match, template], api_visibility="private",
                      queue=False, cancels=[event])
    return [settings[0][0], settings[1][0]]


EXAMPLE_SETS = [
    ("assets/data/freeform/heldout.jsonl", "free-form questions (never trained on)"),
    ("assets/data/gsm8k/test.jsonl", "GSM8K test questions (the CLLM was trained on GSM8K train questions)"),
]


def example_questions(relative_path: str, n: int = 6) -> list[str]:
    """The n shortest questions of a bundled jsonl file, if it is there."""
    path = os.path.join(PROJECT_ROOT, relative_path)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return sorted((r.get("question") or r["prompt"] for r in rows), key=len)[:n]
