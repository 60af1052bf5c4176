"""Every endpoint of `python -m app` through gradio_client, on tiny models, bad input included."""
import json
import os
import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from helpers import PROMPT, assert_offline_html, words_jsonl

from app import model_panel, ui
from app.chat import Side, end_of
from app.finetune import card_line, degraded, time_left
from app.models import Models, Settings
from app.runs import list_runs
from model_utils.decoding import decode_text
from model_utils.errors import UserError
from model_utils.loading import load_model
from model_utils.records import DecodeResult
from model_utils.streaming import TextStream
from model_utils.tiny_models import tiny_tokenizer


@pytest.fixture(scope="module")
def client(app_url):
    return Client(app_url, verbose=False)


def chat(client, prompt, left, right, *, left_decoder="AR", right_decoder="Jacobi", max_new=24, block=6,
         new=True, speedups=(True, True)):
    """Submit a chat turn (a new conversation unless new=False), greedy."""
    if new:
        client.predict(api_name="/clear")
    return client.submit(prompt, left, left_decoder, block, "sliding", right, right_decoder, block, "sliding",
                         max_new, 0.0, 0, 1.0, 0, *speedups, api_name="/chat")


def text_of(messages: list[dict]) -> str:
    return "".join(part["text"] for part in messages[-1]["content"] if part["type"] == "text")


def test_chat_streams_both_panels_and_fills_the_metrics(client, tiny_models):
    base, _ = tiny_models
    t0 = time.perf_counter()
    job = chat(client, PROMPT, base, base, max_new=40)
    first = None
    for update in job:
        if first is None and update[0] and text_of(update[1]):
            first = time.perf_counter() - t0
    outputs = job.outputs()
    left, right, m_left, m_right, template, match, status = job.result()
    print(f"\nfirst streamed token after {first:.2f} s; {len(outputs)} updates")
    assert len(outputs) > 3  # streamed pass by pass, not in one piece
    assert text_of(left) and text_of(right)
    for line in (m_left, m_right):
        assert all(word in line for word in ("tokens", "forward passes", "tokens/forward**", "tokens/s"))
        assert "■ reached max new tokens (40)" in line or "✔ done" in line  # why it ended
    assert "×" not in m_left and m_right.count("×") == 1  # one speed ratio, on the right: right ÷ left
    assert "the left panel's tokens/s (too short to time reliably)" in m_right  # 40 tokens in a fraction of a second
    assert template.count("```text") == 2 and "w5" in template  # what each model was fed
    assert "Identical outputs, token for token" in match  # greedy Jacobi == greedy AR on the same model
    assert status == ""
    assert "+ candidates + adaptive" in m_right and "pass(es) won by a candidate" in m_right  # the default


def test_two_models_that_differ_are_explained_where_the_difference_shows(client, tiny_models):
    base, cllm = tiny_models
    *_, match, _ = chat(client, PROMPT, base, cllm).result()
    assert match.startswith("≠") and "two different models" in match and "choose one model on both sides" in match


def test_chat_speedups_can_be_turned_off_per_panel(client, tiny_models):
    base, _ = tiny_models
    job = chat(client, PROMPT, base, base, left_decoder="Jacobi", speedups=(False, True))
    _, _, m_left, m_right, _, match, _ = job.result()
    assert m_left.startswith("**Jacobi (sliding, n=6)**") and "candidate" not in m_left
    assert "Jacobi (sliding + candidates + adaptive, n=6)" in m_right
    assert "Identical outputs, token for token" in match


def test_multi_turn_keeps_each_panels_history_and_clear_resets(client, tiny_models):
    base, cllm = tiny_models
    chat(client, PROMPT, base, cllm).result()
    left, right, *_ = chat(client, "w9 w10", base, cllm, new=False).result()
    assert [m["role"] for m in left] == ["user", "assistant"] * 2 and len(right) == 4
    cleared = client.predict(api_name="/clear")
    assert cleared[0] == [] and cleared[1] == []


def test_different_models_say_where_they_first_differ(client, tiny_models):
    base, cllm = tiny_models
    *_, match, _ = chat(client, PROMPT, base, cllm).result()
    assert "first differ at token" in match


def test_jacobi_passes_that_make_several_tokens_final_are_highlighted(client, tiny_models):
    _, cllm = tiny_models
    _, right, _, m_right, *_ = chat(client, PROMPT, cllm, cllm, max_new=60, block=16, speedups=(False, False)).result()
    assert int(m_right.split(" fast-forwarded")[0].split("· ")[-1]) > 0  # this prompt repeats w45 at the end
    assert '<span class="ff" title="5 tokens in one forward pass">' in text_of(right)


@pytest.mark.parametrize("prompt, model, message", [
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("w5 " * 2000, None, "limit is 4000"),
    (" ".join(["w5"] * 200), None, "context"),
    (PROMPT, "no-such-model-anywhere", "was not found"),
])
def test_bad_chat_input_gets_a_clear_message_and_the_app_keeps_serving(client, tiny_models, prompt, model, message):
    base, cllm = tiny_models
    *_, status = chat(client, prompt, model or base, cllm).result()
    assert message in status and status.startswith("⚠")
    *_, status = chat(client, PROMPT, base, cllm).result()
    assert status == ""


def press_stop(client, jobs: dict[str, object], button: str = "stop") -> None:
    """What the browser does on a click of Stop (or another button): every listener of its click cancels the
    running events it names (`this.cancel(dep.cancels)` in Gradio's front end, a POST to /cancel each, as
    Job.cancel() sends)."""
    config = client.config
    stop = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == button)
    cancelled = {fn for dep in config["dependencies"] if [stop, "click"] in dep["targets"] for fn in dep["cancels"]}
    by_api = {dep.get("api_name"): dep["id"] for dep in config["dependencies"]}
    for api_name, job in jobs.items():
        if by_api[api_name] in cancelled:
            job.cancel()


def test_a_stopped_chat_frees_the_device(client, tiny_models):
    base, cllm = tiny_models
    # both panels Jacobi with n=1 to the context's end: a few hundred updates, seconds of streaming
    job = chat(client, PROMPT, cllm, cllm, left_decoder="Jacobi", max_new=512, block=1)
    while len(job.outputs()) < 3:
        time.sleep(0.01)
    press_stop(client, {"chat": job})
    second = chat(client, PROMPT, base, cllm)  # at once, no pause
    left, right, _, m_right, _, _, status = second.result()
    assert job.status().code == Status.CANCELLED, "Stop did not cancel the running chat"
    assert "streaming…" in job.outputs()[-1][3]  # it never reached its end
    # the new chat got the device (not "busy"), ran to its end, and holds only its own turn
    assert status == "" and "streaming…" not in m_right and len(left) == len(right) == 2


def test_clear_stops_a_streaming_chat_so_the_next_turn_starts_afresh(client, tiny_models):
    base, cllm = tiny_models
    job = chat(client, PROMPT, cllm, cllm, left_decoder="Jacobi", max_new=512, block=1)
    while len(job.outputs()) < 3:
        time.sleep(0.01)
    press_stop(client, {"chat": job}, button="clear")
    client.predict(api_name="/clear")
    left, right, *_, status = chat(client, PROMPT, base, cllm, new=False).result()
    assert job.status().code == Status.CANCELLED, "Clear did not cancel the running chat"
    assert status == "" and len(left) == len(right) == 2  # only the new turn: the old one was not written back


def figure(value) -> dict:
    value = value.get("value", value) if isinstance(value, dict) and "__type__" in value else value
    return json.loads(value["plot"])


def test_stepper_runs_steps_and_exports(client, tiny_models):
    base, cllm = tiny_models
    out = client.predict(PROMPT, cllm, True, base, 6, "block", 40, api_name="/stepper_run")
    main, other, per_pass, cumulative, summary, html_path, json_path, answer, where = out
    fig = figure(main)
    passes = len(fig["frames"])
    assert answer and not answer.endswith("…")  # the whole answer, as text, at the last pass
    green = sum(c == 1 for c in fig["data"][0]["z"][-1])  # cells of the last row that turned final (green)
    assert f"{green} slot(s) reached their final value (green)" in fig["layout"]["title"]["text"]
    assert fig["layout"]["sliders"][0]["active"] == passes - 1 and f"of {passes - 1}" in where
    assert figure(other)["frames"] and "Jacobi (" in summary and summary.count("\n") == 3
    assert [t["name"] for t in figure(cumulative)["data"]][0].startswith("AR")
    assert figure(per_pass)["data"][0]["type"] == "bar"
    with open(json_path) as f:
        runs = {name: DecodeResult.from_dict(d) for name, d in json.load(f).items()}
    assert set(runs) == {"Jacobi (cllm)", "Jacobi (base)"} and len(runs["Jacobi (cllm)"].passes) == passes
    with open(html_path) as f:
        page = f.read()
    assert_offline_html(page)
    assert "addFrames" in page  # the animation frames are in the page

    def title(plot):
        return figure(plot)["layout"]["title"]["text"]

    _, _, earlier, where = client.predict(api_name="/stepper_prev_pass")
    assert f"Pass **{passes - 2}**" in where and earlier.endswith("…") and len(earlier) <= len(answer) + 2
    plot, _, _, where = client.predict(api_name="/stepper_prev_block")
    block_start = int(where.split("**")[1])
    assert block_start < passes - 2 and f"pass {block_start} of" in title(plot)
    plot, _, _, where = client.predict(api_name="/stepper_next_pass")
    assert f"Pass **{block_start + 1}**" in where
    plot, _, _, where = client.predict(api_name="/stepper_next_block")
    assert int(where.split("**")[1]) > block_start + 1


def test_stepper_refuses_bad_input_and_stepping_before_a_run(app_url, tiny_models):
    fresh = Client(app_url, verbose=False)  # a new session has no run yet
    *_, where = fresh.predict(api_name="/stepper_next_pass")
    assert "Run the stepper first" in where
    *_, where = fresh.predict("", tiny_models[1], False, tiny_models[0], 6, "block", 20, api_name="/stepper_run")
    assert "empty" in where
    *_, where = fresh.predict(PROMPT, "no/such/model", False, tiny_models[0], 6, "block", 20, api_name="/stepper_run")
    assert "was not found" in where


def test_learn_live_example(client, tiny_models):
    plot, status = client.predict("w5 w6 w7", api_name="/learn_run")
    assert status == "" and figure(plot)["frames"]
    prompt = "w5 w6 w7 w5 w6 w7 w5 w6"
    plot, status = client.predict(prompt, api_name="/learn_run_candidates")
    titles = [f["layout"]["title"]["text"] for f in figure(plot)["frames"]]
    model, tokenizer = load_model(tiny_models[1], device="cpu")  # the app's CLLM, decoded here the same way
    run = decode_text(model, tokenizer, prompt, decoder="jacobi", block_size=8, scheme="sliding", candidates=True,
                      max_new_tokens=64)
    assert [i for i, t in enumerate(titles) if "candidate won" in t] == [k for k, p in enumerate(run.passes)
                                                                         if p.winner]
    assert status == ("" if any(p.winner for p in run.passes) else
                      "No candidate won a pass on this question: try one that repeats itself.")


def test_stepper_with_candidate_branches(client, tiny_models):
    base, cllm = tiny_models
    out = client.predict("w5 w6 w7 w5 w6 w7 w5 w6", cllm, False, base, 6, "sliding", 40, True,
                         api_name="/stepper_run")
    main, _, _, _, summary, _, json_path, _, where = out
    assert "passes a candidate won" in summary and "⚠" not in where
    with open(json_path) as f:
        run = DecodeResult.from_dict(next(iter(json.load(f).values())))
    assert any(p.branches for p in run.passes)  # candidates were fed beside the window
    won = sum(p.winner > 0 for p in run.passes)
    header, _, row = summary.splitlines()
    column = [c.strip() for c in header.split("|")].index("passes a candidate won")
    assert row.split("|")[column].strip() == str(won)
    *_, where = client.predict(PROMPT, cllm, False, base, 6, "block", 20, True, api_name="/stepper_run")
    assert "Candidate branches work with the sliding scheme" in where


def finetune(client, base, name, *, steps=4, data="gsm8k", upload=None, prompts=3, api="/finetune_start"):
    return client.submit(base, data, upload, prompts, 6, 16, steps, 1e-3, "global", 10.0, 0.1, False, True, name,
                         api_name=api)


@pytest.fixture
def base_model(tiny_models):
    return tiny_models[0]


def test_finetune_runs_to_completion_and_the_model_joins_the_lists(client, base_model, tmp_path):
    upload = handle_file(words_jsonl(tmp_path / "data.jsonl"))
    job = finetune(client, base_model, "tiny-run", data="upload", upload=upload)
    status, loss, *dropdowns, table, doomed = job.result()
    assert status.startswith("✔ Finished step 4/4"), status
    assert "Scorecard on 6 held-out prompts (greedy Jacobi), before → after" in status
    row = next(r for r in table["data"] if r[0] == "tiny-run")
    assert row[1] == "finished" and row[2] == 4 and float(row[3]) > 0 and row[4] != "–"
    assert "tiny-run" in [c[0] for c in doomed["choices"]]
    assert [t["name"] for t in figure(loss)["data"]] == ["loss", "consistency", "ar"]
    trained = status.split("`")[1]
    assert os.path.exists(os.path.join(trained, "model.safetensors"))
    assert all(trained in [c[0] for c in d["choices"]] for d in dropdowns)
    *_, status = chat(client, PROMPT, trained, trained).result()  # the new model serves in the chat
    assert status == ""


def test_finetune_trains_a_packed_lora_adapter_that_serves_in_the_chat(client, base_model, tmp_path):
    upload = handle_file(words_jsonl(tmp_path / "data.jsonl"))
    status, *_ = client.submit(base_model, "upload", upload, 3, 6, 16, 3, 1e-3, "global", 10.0, 0.0, False, True,
                               "lora-run", 4, True, api_name="/finetune_start").result()
    assert status.startswith("✔ Finished step 3/3"), status
    trained = status.split("`")[1]
    assert os.path.isfile(os.path.join(trained, "adapter_config.json"))
    assert not os.path.exists(os.path.join(trained, "model.safetensors"))  # an adapter, not a whole model
    *_, status = chat(client, PROMPT, trained, trained).result()
    assert status == ""


def test_second_training_is_refused_and_cancel_keeps_the_last_checkpoint(client, base_model, tmp_path):
    upload = handle_file(words_jsonl(tmp_path / "data.jsonl"))
    job = finetune(client, base_model, "long-run", data="upload", upload=upload, steps=5000)
    while not any("Training:" in str(o[0]) for o in job.outputs()):
        time.sleep(0.1)
    status, *_ = client.predict(base_model, "upload", upload, 2, 6, 16, 4, 1e-3, "global", 10.0, 0.1, False, True,
                                "other", api_name="/finetune_start")
    assert "already in progress" in status
    *_, busy = chat(client, PROMPT, base_model, base_model).result()
    assert "busy fine-tuning" in busy
    assert "Cancelling" in client.predict(api_name="/finetune_cancel")
    status, *_ = job.result()
    assert status.startswith("✔ Cancelled at step"), status
    step = int(status.split("step ")[1].split("/")[0])
    assert step < 5000
    checkpoints = os.listdir(os.path.join(status.split("`")[1], "checkpoints"))
    assert f"checkpoint-{step}" in checkpoints
    resumed = finetune(client, base_model, "long-run", data="upload", upload=upload, steps=5000,
                       api="/finetune_resume")
    while not any("Training:" in str(o[0]) for o in resumed.outputs()):
        time.sleep(0.1)
    first = next(o[0] for o in resumed.outputs() if "Training:" in str(o[0]))
    assert int(first.split("step ")[1].split("/")[0]) > step  # continues from the checkpoint
    shown = next(o[1] for o in resumed.outputs() if o[1])  # the loss plot shows the steps before the resume too
    assert figure(shown)["data"][0]["x"][0] == 1
    client.predict(api_name="/finetune_cancel")
    resumed.result()


@pytest.mark.parametrize("content, message", [
    ("this is not json\n", "not valid JSON"),
    ('{"answer": "w5"}\n', "no non-empty 'question'"),
])
def test_bad_uploads_get_a_clear_message(client, base_model, tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    status, *_ = finetune(client, base_model, "bad", data="upload", upload=handle_file(str(path))).result()
    assert message in status and status.startswith("⚠")


def test_finetune_refuses_bad_settings(client, base_model):
    status, *_ = finetune(client, base_model, "bad", data="upload", upload=None).result()
    assert "Upload a .jsonl" in status
    status, *_ = finetune(client, base_model, "../escape").result()
    assert "plain name" in status
    status, *_ = finetune(client, base_model, "ok", steps=0).result()
    assert "at least 1" in status


def test_model_text_is_shown_literally_and_multi_token_passes_are_marked():
    from app.chat import escape, highlighted
    assert escape("<<16-3-4=9>>9\n#### 18") == "&lt;&lt;16\\-3\\-4=9&gt;&gt;9\n\\#\\#\\#\\# 18"
    html = highlighted([("She ", 1), ("sells 9\neggs", 3)])
    assert html == ('She <span class="ff" title="3 tokens in one forward pass">sells 9</span>\n'
                    '<span class="ff" title="3 tokens in one forward pass">eggs</span>')


def test_the_model_cache_keeps_the_most_recent(tiny_models):
    from app.models import Models, Settings
    models = Models(Settings(*tiny_models, device="cpu"), capacity=1)
    first = models.get(tiny_models[0])
    assert models.get(tiny_models[0]) is first
    models.get(tiny_models[1])
    assert list(models.cache) == [(tiny_models[1], "cpu", "auto", None)]
    with models.turn("testing"):
        with pytest.raises(UserError, match="busy testing"):
            with models.turn("chatting"):
                pass


def test_an_answer_cut_by_the_context_says_so(client, tiny_models):
    base, cllm = tiny_models
    long_prompt = " ".join(f"w{3 + i % 90}" for i in range(100))  # the tiny models' context holds 128 positions
    left, right, m_left, m_right, _, _, status = chat(client, long_prompt, base, cllm, max_new=100).result()
    assert "✂ cut by the model's context" in m_left and "✂ cut by the model's context" in m_right
    assert status.startswith("✂ Left: the model's context leaves room for") and "not 100" in status


@pytest.mark.parametrize("block, max_new, message", [(0, 24, "less than minimum value 1"),
                                                     (100000, 24, "greater than maximum value 64"),
                                                     (6, 0, "less than minimum value 1")])
def test_out_of_range_numbers_are_refused_not_adjusted(client, tiny_models, block, max_new, message):
    base, cllm = tiny_models
    with pytest.raises(AppError, match=message):
        chat(client, PROMPT, base, cllm, block=block, max_new=max_new).result()


def test_an_empty_answer_and_each_way_of_ending_are_named():
    def side(tokens, room=24):
        s = Side("ar", None, 1, [1, 5], {2}, TextStream(tiny_tokenizer()), iter([]), requested=24, room=room)
        s.stream.add(tokens)
        return s
    assert end_of(side([2])).startswith("⚠ empty answer")
    assert end_of(side([5, 6, 2])) == "✔ done"
    assert end_of(side([5, 6], room=2)).startswith("✂ cut by the model's context")
    assert end_of(side([5, 6])) == "■ reached max new tokens (24)"


def test_a_run_can_be_deleted_and_leaves_the_lists(client, base_model, tmp_path):
    upload = handle_file(words_jsonl(tmp_path / "data.jsonl"))
    status, *_ = finetune(client, base_model, "doomed-run", data="upload", upload=upload, steps=2).result()
    path = status.split("`")[1]
    status, *dropdowns, table, doomed = client.predict("doomed-run", api_name="/finetune_delete")
    assert status.startswith("Deleted run `doomed-run`") and not os.path.exists(path)
    assert all(path not in [c[0] for c in d["choices"]] for d in dropdowns)
    assert "doomed-run" not in [r[0] for r in table["data"]]
    status, *_ = client.predict("doomed-run", api_name="/finetune_delete")
    assert status.startswith("⚠ There is no run named 'doomed-run'")


def test_runs_on_disk_are_in_the_model_lists_after_a_restart(tmp_path, monkeypatch):
    finished, empty = tmp_path / "old-run", tmp_path / "never-trained"
    finished.mkdir()
    empty.mkdir()
    (finished / "config.json").write_text("{}")
    (finished / "finished.json").write_text('{"steps": 3}')
    monkeypatch.setattr(ui, "RUNS", str(tmp_path))
    models = Models(Settings())
    ui.build_demo(models)
    assert str(finished) in models.choices() and str(empty) not in models.choices()


def test_the_api_names_every_output_and_says_how_chat_history_is_kept(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name, endpoint in api.items():
        labels = [r.get("label") or "" for r in endpoint["returns"]]
        assert not any(label.startswith("value_") or not label for label in labels), (name, labels)
    upload = next(p for p in api["/finetune_start"]["parameters"] if p["parameter_name"] == "upload")
    assert upload["parameter_has_default"]  # the bundled data set needs no upload
    described = client.config["dependencies"]
    chat_dep = next(d for d in described if d.get("api_name") == "chat")
    assert "per client session" in chat_dep.get("api_description", "") and "/clear" in chat_dep["api_description"]


def test_the_model_panel_loads_with_its_settings_unloads_and_refuses_clearly(client, tiny_models):
    base, _ = tiny_models
    status, table = client.predict(base, "cpu", "float32", "8-bit", api_name="/models_load")
    assert status.startswith(f"✔ Loaded `{base}` on cpu") and "quantisation **8-bit**" in status
    assert [base, "cpu", "float32", "8-bit"] == table["data"][0][:4]
    *_, busy = chat(client, PROMPT, base, base).result()  # the chat uses the 8-bit copy now
    assert busy == ""
    status, table = client.predict("no/such/model", "cpu", "float32", "none", api_name="/models_load")
    assert status.startswith("⚠") and "was not found" in status and "quantisation **8-bit**" not in status
    status, table = client.predict(base, api_name="/models_unload")
    assert status.startswith(f"✔ Unloaded `{base}`") and all(row[0] != base for row in table["data"])
    status, _ = client.predict(base, "auto", "auto", "none", api_name="/models_load")  # back to the app's defaults
    assert "quantisation **none**" in status


def test_a_collapsed_model_is_flagged_at_the_end_of_a_run():
    before = {"n": 6, "tokens_per_forward": 1.2, "format_rate": 1.0, "repeats": 0}
    collapsed = before | {"tokens_per_forward": 9.5, "repeats": 4}  # "2222…" is many tokens per pass
    assert degraded(before, collapsed).startswith("The model collapsed: 4 of 6 held-out answers repeat")
    assert "answer format fell from 100% to 50%" in degraded(before, before | {"format_rate": 0.5})
    assert degraded(before, before | {"tokens_per_forward": 2.0}) is None
    assert "**1.20 → 9.50** tokens per forward" in card_line(before, collapsed)


def test_the_time_left_comes_from_this_sessions_pace(monkeypatch):
    monkeypatch.setattr("app.finetune.time.monotonic", lambda: 100.0)
    assert time_left((90.0, 10), 12, 100) == ""  # too few steps to tell
    assert time_left((90.0, 10), 20, 100) == " · about 80 s left"  # 1 s a step, 80 to go
    assert time_left((90.0, 10), 20, 1000) == " · about 16 min left"


def test_a_fractional_step_count_is_refused_not_rounded(client, base_model):
    status, *_ = client.predict(base_model, "gsm8k", None, 3, 6, 16, 2.5, 1e-3, "global", 10.0, 0.1, False, True,
                                "fractional", api_name="/finetune_start")
    assert status == "⚠ The number of training steps must be a whole number (got 2.5)."


def test_a_failed_load_keeps_the_settings_and_a_shared_app_keeps_its_own():
    models = Models(Settings())
    status, _ = model_panel.load(models, "no/such/model", "cpu", "float32", "8-bit")
    assert status.startswith("⚠") and (models.settings.device, models.settings.dtype, models.settings.bits) == (
        "auto", "auto", None)
    shared = Models(Settings(free_models=False))
    for status, _ in (model_panel.load(shared, "tiny-arith-cllm", "cpu", "float32", "8-bit"),
                      model_panel.unload(shared, "tiny-arith-cllm")):
        assert status.startswith("⚠ This app is shared") and shared.settings.bits is None and not shared.cache


def test_a_torn_log_or_scorecard_does_not_stop_the_runs_list(tmp_path):
    run = tmp_path / "torn-run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "log.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    (run / "scorecard.json").write_text('{"before": ')
    [listed] = list_runs(str(tmp_path))
    assert listed["step"] == 1 and listed["scorecard"] is None and listed["state"] == "cancelled"


def test_chat_samples_reproducibly_and_says_so(client, tiny_models):
    base, cllm = tiny_models

    def sampled(seed):
        client.predict(api_name="/clear")
        return client.submit(PROMPT, cllm, "AR", 6, "sliding", cllm, "Jacobi", 6, "sliding", 24, 0.9, 20, 0.95, seed,
                             api_name="/chat").result()
    first, again, other = sampled(1), sampled(1), sampled(2)
    assert first[:2] == again[:2] and (first[0], first[1]) != (other[0], other[1])
    assert "🎲 Sampling at temperature 0.9 (seed 1)" in first[-1]
    client.predict(api_name="/clear")
    *_, status = client.submit(PROMPT, cllm, "AR", 6, "sliding", cllm, "Jacobi", 6, "block", 24, 0.9, 0, 1.0, 1,
                               api_name="/chat").result()
    assert status.startswith("⚠") and "sliding scheme" in status
