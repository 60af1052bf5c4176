"""Fine-tune tab: collect a model's Jacobi trajectories, then consistency-train it, with a live loss plot."""
import json
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field

import gradio as gr
import torch

from app.inputs import MAX_UPLOAD_BYTES, real_number, whole_number
from app.models import Models
from app.runs import RUNS, SCORECARD, delete_run, list_runs, log_losses
from model_utils.data import read_prompts
from model_utils.errors import UserError
from model_utils.loading import DEFAULT_THREADS, PROJECT_ROOT
from model_utils.quality import scorecard
from model_utils.train import TrainConfig, last_complete_checkpoint, train
from model_utils.trajectories import collect_trajectories
from viz import loss_figure

BUNDLED = os.path.join(PROJECT_ROOT, "assets/data/gsm8k/train.jsonl")
HELD_OUT = os.path.join(PROJECT_ROOT, "assets/data/synth/heldout.jsonl")  # the guard's and scorecard's prompts
CHECK_PROMPTS = 6
LOSSES = ("loss", "consistency", "ar")
RUN_COLUMNS = ["run", "state", "last step", "size (MB)", "tokens/forward", "answer format", "repeats"]


@dataclass
class Job:
    """The one fine-tuning run the app allows at a time, and what it has reported so far."""
    thread: threading.Thread | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    events: queue.Queue = field(default_factory=queue.Queue)
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: int = 0
    max_steps: int = 0
    owner: str = ""  # the browser session that started the run
    out: str = ""  # the run's folder

    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    # the library's training callback
    def on_step(self, step: int, max_steps: int, losses: dict) -> None:
        self.step, self.max_steps = step, max_steps
        if "loss" in losses:
            self.events.put(("step", {"step": step} | {k: losses[k] for k in LOSSES if k in losses}))
        if losses.get("guard", {}).get("warning"):
            self.events.put(("guard", f"step {step}: {losses['guard']['warning']}"))

    def should_stop(self) -> bool:
        return self.stop.is_set()


def dataset_rows(dataset: str, upload: str | None, n_prompts: int) -> list[dict]:
    """The first n prompts of the bundled GSM8K train split or of an uploaded jsonl (question/answer)."""
    if dataset == "upload":
        if not upload:
            raise UserError("Upload a .jsonl file with one {\"question\": ..., \"answer\": ...} object per line.")
        rows = read_prompts(upload, max_bytes=MAX_UPLOAD_BYTES)
    else:
        rows = read_prompts(BUNDLED)
    return rows[: int(n_prompts)]


def check_numbers(n_prompts: int, block: int, steps: int, lr: float, ar_weight: float, smoothing: float) -> None:
    if n_prompts < 1 or steps < 1 or block < 2:
        raise UserError("Prompts and steps must be at least 1 and the block size at least 2.")
    if not 0 < lr <= 1e-2:
        raise UserError(f"The learning rate must be in (0, 0.01] (got {lr}).")
    if ar_weight < 0 or not 0 <= smoothing < 1:
        raise UserError("The AR weight must be ≥ 0 and the label smoothing in [0, 1).")


class Cancelled(Exception):
    """Raised from the collection progress callback when Cancel is pressed."""


def work(models: Models, job: Job, rows: list[dict], config: TrainConfig, block: int, max_new: int) -> None:
    """Collect trajectories, then train; every outcome goes to job.events (runs in its own thread)."""
    try:
        with models.turn("fine-tuning a model", wait=True):
            model, tokenizer = models.get(config.model)
            job.events.put(("phase", "collecting trajectories"))
            if not config.resume and os.path.exists(config.trajectories):
                os.remove(config.trajectories)  # a fresh start collects afresh

            def collected(i: int, n: int) -> None:
                job.events.put(("collect", (i, n)))
                if job.stop.is_set():
                    raise Cancelled

            collect_trajectories(model, tokenizer, rows, config.trajectories, block_size=block,
                                 max_new_tokens=max_new, labels=config.gt_labels, progress=collected)
            job.events.put(("phase", "training"))
            prompts = config.guard_prompts  # the scorecard checks the prompts the guard watches
            before = scorecard(model, tokenizer, prompts, block, max_new)
            decoding_threads = torch.get_num_threads()
            torch.set_num_threads(DEFAULT_THREADS)  # training gets every core; decoding's setting comes back after
            try:
                out = train(config, job)
            finally:
                torch.set_num_threads(decoding_threads)
            models.add_trained(out)  # (and forgets a copy loaded before this run)
            job.events.put(("phase", "scoring the trained model"))
            after = scorecard(*models.get(out), prompts, block, max_new)
            with open(os.path.join(out, SCORECARD), "w") as f:
                json.dump({"before": before, "after": after}, f)
            verb = "Cancelled at" if job.stop.is_set() else "Finished"
            problem = degraded(before, after)
            job.events.put(("done", f"{'⚠' if problem else '✔'} {verb} step {job.step}/{job.max_steps}; the model is "
                                    f"saved in `{out}` and is now in every model list.\n\n{card_line(before, after)}"
                                    + (f"\n\n**⚠ {problem}**" if problem else "")))
    except Cancelled:
        job.events.put(("done", "✔ Cancelled while collecting trajectories: Resume continues the collection."))
    except UserError as e:
        job.events.put(("error", str(e)))
    except Exception as e:  # a failed run is reported in the tab; the app keeps serving
        traceback.print_exc()
        job.events.put(("error", f"Fine-tuning failed: {type(e).__name__}: {e}"))


def card_line(before: dict, after: dict) -> str:
    """The scorecard of a run: the model before → after, on the same held-out prompts."""
    return (f"Scorecard on {after['n']} held-out prompts (greedy Jacobi), before → after: "
            f"**{before['tokens_per_forward']:.2f} → {after['tokens_per_forward']:.2f}** tokens per forward · "
            f"answer format {before['format_rate']:.0%} → {after['format_rate']:.0%} · "
            f"repeating outputs {before['repeats']} → {after['repeats']}")


def degraded(before: dict, after: dict, max_format_drop: float = 0.2) -> str | None:
    """Why the trained model is worse than its start (the quality guard's rule), or None."""
    if after["repeats"] > before["repeats"]:
        return (f"The model collapsed: {after['repeats']} of {after['n']} held-out answers repeat a token or loop "
                f"over a phrase (before: {before['repeats']}). Lower the learning rate or raise the AR weight.")
    if after["format_rate"] < before["format_rate"] - max_format_drop:
        return (f"The answer format fell from {before['format_rate']:.0%} to {after['format_rate']:.0%} of held-out "
                f"answers.")
    return None


def run_rows(runs: list[dict]) -> list[list]:
    """The runs table: one row per run folder."""
    def card(r, key, spec):
        return format(r["scorecard"]["after"][key], spec) if r["scorecard"] else "–"
    return [[r["name"], r["state"], r["step"], round(r["mb"], 1), card(r, "tokens_per_forward", ".2f"),
             card(r, "format_rate", ".0%"), card(r, "repeats", "d")] for r in runs]


class FineTune:
    """The tab's event handlers around the app's one job; bound methods, so Gradio passes each its gr.Request
    (a run belongs to the browser session that started it)."""

    def __init__(self, models: Models, job: Job, dropdowns: int):
        self.models, self.job, self.dropdowns = models, job, dropdowns

    def cancel(self, request: gr.Request) -> str:
        return cancel(self.job, session(request))

    def runs(self) -> tuple:
        """The runs table and the list of runs that can be deleted."""
        runs = list_runs(RUNS)
        return run_rows(runs), gr.Dropdown(choices=[r["name"] for r in runs], value=None)

    def delete(self, name: str | None) -> list:
        """Delete a run that is not training now; it leaves every model list."""
        try:
            if not name:  # none chosen, or the confirmation was declined
                raise UserError("Nothing deleted: choose a run, then confirm.")
            if self.job.running() and os.path.basename(self.job.out) == name:
                raise UserError(f"Run {name!r} is training now: cancel it first.")
            path = delete_run(RUNS, name)
            self.models.forget(path)
            message = f"Deleted run `{name}` ({path})."
        except UserError as e:
            gr.Warning(str(e))
            message = f"⚠ {e}"
        choices = [gr.Dropdown(choices=self.models.choices())] * self.dropdowns
        return [message, *choices, *self.runs()]

    def start(self, base: str, dataset: str, upload: str | None = None, n_prompts=None, block=None, max_new=None,
              steps=None, lr=None, consistency: str = "global", ar_weight=None, smoothing=None, gt_labels: bool = False,
              answer_only: bool = True, name: str | None = None, lora_rank=0, packed: bool = False,
              resume: bool = False, request: gr.Request = None,
              progress=gr.Progress()):  # noqa: B008 (Gradio injects it)
        """Start (or resume) a run and stream its progress and losses until it ends.

        The defaults make `upload` optional in the API (the bundled data set needs none); the UI and the API send
        every other value (the API fills in the UI's)."""
        models, job, dropdowns = self.models, self.job, self.dropdowns
        skip = [gr.skip()] * (dropdowns + 2)
        try:
            n_prompts, block, max_new, steps, lora_rank = (whole_number(v, what) for v, what in (
                (n_prompts, "number of prompts"), (block, "block size"), (max_new, "number of new tokens"),
                (steps, "number of training steps"), (lora_rank, "LoRA rank")))
            lr, ar_weight, smoothing = (real_number(v, what) for v, what in (
                (lr, "learning rate"), (ar_weight, "AR loss weight"), (smoothing, "label smoothing")))
            check_numbers(n_prompts, block, steps, lr, ar_weight, smoothing)
            out = os.path.join(RUNS, run_name(name))
            if resume and not os.path.isdir(out):
                raise UserError(f"There is no run named {run_name(name)!r} to resume: press Start.")
            if not resume and os.path.exists(out):
                raise UserError(f"A run named {run_name(name)!r} exists already: Resume it, or choose another name.")
            rows = dataset_rows(dataset, upload, n_prompts)
            config = TrainConfig(model=base, trajectories=out + "-trajectories.jsonl", out=out, max_steps=steps,
                                 lr=lr, consistency=consistency, ar_weight=ar_weight,
                                 label_smoothing=smoothing, gt_labels=bool(gt_labels),
                                 ar_mask_prompt=bool(answer_only),
                                 save_steps=max(10, steps // 10), resume=resume, lora_rank=lora_rank,
                                 packed=bool(packed),
                                 device=models.settings.device, guard_max_new_tokens=max_new,
                                 guard_prompts=[r["prompt"] for r in read_prompts(HELD_OUT)[:CHECK_PROMPTS]])
            with job.lock:
                if job.running():
                    raise UserError(f"A fine-tuning run is already in progress (step {job.step}/{job.max_steps}): "
                                    f"wait for it to end.")
                job.stop.clear()
                job.owner, job.out = session(request), out
                job.events = queue.Queue()
                job.step, job.max_steps = 0, steps
                job.thread = threading.Thread(target=work, args=(models, job, rows, config, block, max_new),
                                              daemon=True)
                job.thread.start()
        except UserError as e:
            gr.Warning(str(e))
            yield [f"⚠ {e}", gr.skip(), *skip]
            return
        losses = resumed_losses(out) if resume else []  # the plot shows the whole run, not only this part
        status, kind, warnings = "Waiting for the device…", "", []
        first: tuple[float, int] | None = None  # (time, step) of this session's first step, for the estimate
        try:
            yield [status, loss_figure(losses) if losses else gr.skip(), *skip]
            while True:
                time.sleep(0.5)  # one update per half second, however fast the steps are
                events = []
                while not job.events.empty():
                    events.append(job.events.get())
                for kind, value in events:
                    if kind == "phase":
                        status = f"**{value.capitalize()}…**"
                    elif kind == "collect":
                        progress(value, desc="collecting trajectories", unit="prompts")
                        status = f"**Collecting trajectories:** prompt {value[0]}/{value[1]}"
                    elif kind == "guard":
                        warnings.append(f"⚠ Quality guard at {value}")
                        gr.Warning(f"Quality guard at {value}")
                    elif kind == "step":
                        losses = [r for r in losses if r["step"] < value["step"]] + [value]  # redone steps replace
                        first = first or (time.monotonic(), value["step"])
                        progress((value["step"], job.max_steps), desc="training", unit="steps")
                        status = (f"**Training:** step {value['step']}/{job.max_steps} · loss {value['loss']:.3f}"
                                  f"{time_left(first, value['step'], job.max_steps)}")
                    else:
                        message = value if kind == "done" else f"⚠ {value}"
                        choices = [gr.Dropdown(choices=models.choices())] * dropdowns
                        yield ["\n\n".join([message, *warnings]), loss_figure(losses) if losses else gr.skip(),
                               *choices, *self.runs()]
                        return
                if events:
                    stepped = any(kind == "step" for kind, _ in events)
                    yield ["\n\n".join([status, *warnings]), loss_figure(losses) if stepped else gr.skip(), *skip]
        finally:
            if job.running() and kind not in ("done", "error"):
                job.stop.set()  # the page was closed: stop within a step, keeping the last checkpoint


def resumed_losses(out: str) -> list[dict]:
    """The logged losses up to the checkpoint a resumed run continues from (later steps are redone)."""
    checkpoint = last_complete_checkpoint(os.path.join(out, "checkpoints"))
    last = int(checkpoint.rsplit("-", 1)[1]) if checkpoint else 0
    return [r for r in log_losses(out) if r["step"] <= last]


def time_left(first: tuple[float, int], step: int, max_steps: int) -> str:
    """" · about N s/min left" from this session's pace, once a few steps have run."""
    start, first_step = first
    done = step - first_step
    if done < 3:
        return ""
    seconds = (time.monotonic() - start) / done * (max_steps - step)
    return f" · about {seconds:.0f} s left" if seconds < 120 else f" · about {seconds / 60:.0f} min left"


def session(request: gr.Request | None) -> str:
    """The browser session an event came from ("" where Gradio gives no request, e.g. in a direct call)."""
    return getattr(request, "session_hash", None) or ""


def run_name(name: str | None) -> str:
    """A run's folder name: letters, digits, - and _ only."""
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise UserError("Give the run a plain name (letters, digits, - or _), without slashes.")
    return name


def cancel(job: Job, owner: str) -> str:
    if not job.running():
        return "Nothing to cancel: no fine-tuning run is in progress."
    if job.owner != owner:
        return "The run in progress was started in another browser session: only that session can cancel it."
    job.stop.set()
    return "Cancelling: training stops after the current step and keeps its last checkpoint…"


def build(models: Models, dropdowns: list[gr.Dropdown]) -> list[gr.Dropdown]:
    """The fine-tune tab; a finished model is added to the given model lists. Returns its own model list."""
    job = Job()
    with gr.Row():
        base = gr.Dropdown(models.choices(), value=models.settings.base, label="base model", allow_custom_value=True,
                           elem_id="finetune-base")
        dataset = gr.Radio([("bundled GSM8K train split", "gsm8k"), ("uploaded .jsonl", "upload")], value="gsm8k",
                           label="dataset", elem_id="finetune-dataset")
        upload = gr.File(label=f"question/answer .jsonl (≤ {MAX_UPLOAD_BYTES // 1_000_000} MB)",
                         file_types=[".jsonl"], type="filepath", height=120, elem_id="finetune-upload")
    with gr.Row():
        n_prompts = gr.Number(64, label="prompts", elem_id="finetune-prompts")
        block = gr.Number(16, label="block size", elem_id="finetune-block")
        max_new = gr.Number(128, label="max new tokens per prompt", elem_id="finetune-max-new")
        steps = gr.Number(200, label="training steps", elem_id="finetune-steps")
        lr = gr.Number(5e-4, label="learning rate", elem_id="finetune-lr")
    with gr.Row():
        consistency = gr.Radio(["global", "local"], value="global", label="consistency loss",
                               elem_id="finetune-consistency")
        ar_weight = gr.Number(5.0, label="AR loss weight", elem_id="finetune-ar-weight")
        smoothing = gr.Number(0.1, label="label smoothing", elem_id="finetune-smoothing")
        with gr.Column(min_width=200):
            gt_labels = gr.Checkbox(False, label="AR loss on the data set's answers", elem_id="finetune-gt-labels")
            answer_only = gr.Checkbox(True, label="AR loss on answer tokens only", elem_id="finetune-answer-only")
        name = gr.Textbox("cllm-finetuned", label="run name", elem_id="finetune-name")
    with gr.Row():
        lora_rank = gr.Number(0, label="LoRA rank (0: full fine-tuning; a LoRA saves a small adapter)",
                              elem_id="finetune-lora-rank")
        packed = gr.Checkbox(False, label="packed: every block of an answer in one forward pass (global loss)",
                             elem_id="finetune-packed")
    with gr.Row():
        start_btn = gr.Button("Start", variant="primary", elem_id="finetune-start")
        resume_btn = gr.Button("Resume", elem_id="finetune-resume")
        cancel_btn = gr.Button("Cancel", variant="stop", elem_id="finetune-cancel")
    status = gr.Markdown("Defaults finish in a few minutes on a CPU. At the end, a scorecard compares the model "
                         "before and after on held-out problems.", label="status", elem_id="finetune-status")
    plot = gr.Plot(label="training loss", show_label=False, elem_id="loss-plot")
    handlers = FineTune(models, job, len(dropdowns) + 1)
    with gr.Accordion("Runs on disk (kept across restarts)", open=False, elem_id="finetune-runs"):
        rows, names = handlers.runs()
        runs_table = gr.Dataframe(rows, headers=RUN_COLUMNS, label="runs", interactive=False,
                                  elem_id="finetune-runs-table")
        with gr.Row():
            doomed = gr.Dropdown(names.choices, value=None, label="run to delete", allow_custom_value=True,
                                 elem_id="finetune-delete-name")
            delete_btn = gr.Button("Delete run", variant="stop", elem_id="finetune-delete")
    inputs = [base, dataset, upload, n_prompts, block, max_new, steps, lr, consistency, ar_weight, smoothing,
              gt_labels, answer_only, name, lora_rank, packed]
    outputs = [status, plot, *dropdowns, base, runs_table, doomed]
    for button, resume in ((start_btn, False), (resume_btn, True)):
        button.click(handlers.start, [*inputs, gr.State(resume)], outputs,
                     api_name="finetune_resume" if resume else "finetune_start", concurrency_limit=None,
                     show_progress_on=[status])
    cancel_btn.click(handlers.cancel, None, [status], api_name="finetune_cancel", queue=False)
    delete_btn.click(handlers.delete, [doomed], [status, *dropdowns, base, runs_table, doomed],
                     api_name="finetune_delete", js="(name) => (name && confirm(`Delete run ${name}?`)) ? name : null")
    return [base]
