"""The app in Debian's chromium: chat streaming, stepping, offline export, fine-tuning and cancelling."""
import json
import os
import re

import pytest
from helpers import PROMPT, words_jsonl
from playwright.sync_api import Page, expect

CHROMIUM = "/usr/bin/chromium"
ENDED = re.compile("✔ done|■ reached max new tokens|✂ cut by the model's context")  # a chat run's end
NO_CHROMIUM = "needs Debian's chromium (apt-get install chromium)"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=NO_CHROMIUM)]


@pytest.fixture(scope="session")
def browser_type_launch_args():
    return {"executable_path": CHROMIUM, "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                                                  "--disable-component-update", "--disable-sync"]}


@pytest.fixture(scope="session")
def browser_context_args():
    return {"viewport": {"width": 1400, "height": 1000}, "accept_downloads": True}


def open_tab(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.get_by_role("tab", name=name).click()


def plot_title(page: Page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} .gtitle").first.text_content()


def test_chat_streams_both_panels_and_fills_the_metrics(page: Page, app_url, tiny_models):
    page.goto(app_url)
    page.wait_for_selector("#metrics-right", state="attached")
    # count the distinct states the right panel's metrics go through while streaming
    page.evaluate("""() => { window.seen = new Set();
        new MutationObserver(() => window.seen.add(document.querySelector('#metrics-right').innerText))
          .observe(document.querySelector('#metrics-right'),
                   {subtree: true, childList: true, characterData: true}); }""")
    page.locator("#block-right input[type=number]").fill("2")
    page.locator("#prompt textarea").fill(PROMPT)
    page.click("#send")
    expect(page.locator("#metrics-right")).to_contain_text(ENDED, timeout=30_000)
    expect(page.locator("#metrics-left")).to_contain_text("tokens/s")
    assert page.evaluate("window.seen.size") > 3  # filled pass by pass
    for side in ("left", "right"):
        expect(page.locator(f"#chat-{side} [data-testid=bot]")).to_contain_text(re.compile(r"w\d+"))
    expect(page.locator("#chat-match")).to_contain_text("first differ at token")
    expect(page.locator("#chat-legend")).to_contain_text("became final this pass (fast-forwarded)")


def test_one_click_puts_the_same_model_on_both_sides_and_the_race_then_matches(page: Page, app_url, tiny_models):
    base, cllm = tiny_models
    page.goto(app_url)
    page.click("#same-model")
    expect(page.locator("#model-left input")).to_have_value(cllm)
    expect(page.locator("#model-right input")).to_have_value(cllm)
    page.locator("#prompt textarea").fill(PROMPT)
    page.click("#send")
    expect(page.locator("#chat-match")).to_contain_text("Identical outputs, token for token", timeout=30_000)
    page.click("#base-vs-cllm")
    expect(page.locator("#model-left input")).to_have_value(base)


def test_stepper_steps_and_plays_frames(page: Page, app_url):
    open_tab(page, app_url, "Jacobi stepper")
    page.locator("#stepper-prompt textarea").fill(PROMPT)
    page.click("#stepper-run")
    expect(page.locator("#stepper-status")).to_contain_text("Pass", timeout=30_000)
    last = plot_title(page, "trajectory-plot")
    page.click("#stepper-prev-pass")
    expect(page.locator("#trajectory-plot .gtitle")).not_to_have_text(last)
    before = plot_title(page, "trajectory-plot")
    page.click("#stepper-prev-block")
    expect(page.locator("#trajectory-plot .gtitle")).not_to_have_text(before)
    start = plot_title(page, "trajectory-plot")
    # the figure's own animation frames are back in the browser (gr.Plot drops them), so Play moves it
    page.wait_for_function("() => document.querySelector('#trajectory-plot .js-plotly-plot')?.dataset.frames > 1")
    page.locator("#trajectory-plot .updatemenu-button").first.click()
    expect(page.locator("#trajectory-plot .gtitle")).not_to_have_text(start, timeout=10_000)
    # ... from the pass shown, not from pass 0
    shown = int(re.search(r"pass (\d+) of", start)[1])
    assert int(re.search(r"pass (\d+) of", plot_title(page, "trajectory-plot"))[1]) > shown > 0
    expect(page.locator("#stepper-answer textarea")).not_to_have_value("")


def test_exported_html_opens_offline(page: Page, app_url, tmp_path, browser):
    open_tab(page, app_url, "Jacobi stepper")
    page.click("#stepper-run")
    expect(page.locator("#stepper-status")).to_contain_text("Pass", timeout=30_000)
    with page.expect_download() as download:
        page.click("#export-html")
    path = tmp_path / "trajectory.html"
    download.value.save_as(path)
    with page.expect_download() as download:
        page.click("#export-json")
    download.value.save_as(tmp_path / "trajectory.json")
    assert json.loads((tmp_path / "trajectory.json").read_text())
    offline = browser.new_context(offline=True)
    requests = []
    view = offline.new_page()
    view.on("request", lambda r: requests.append(r.url))
    view.goto(path.as_uri())
    view.wait_for_function("() => document.querySelector('.js-plotly-plot')?._transitionData?._frames?.length > 0")
    expect(view.locator(".gtitle")).to_contain_text("pass")
    assert all(url.startswith("file:") or url.startswith("data:") for url in requests)
    offline.close()


def test_finetune_completes_and_cancels(page: Page, app_url, tmp_path):
    open_tab(page, app_url, "Fine-tune")
    page.get_by_label("uploaded .jsonl").check()
    page.locator("#finetune-upload input[type=file]").set_input_files(words_jsonl(tmp_path / "data.jsonl"))
    page.locator("#finetune-prompts input").fill("3")
    page.locator("#finetune-steps input").fill("4")
    page.locator("#finetune-name textarea, #finetune-name input").first.fill("browser-run")
    page.click("#finetune-start")
    expect(page.locator("#finetune-status")).to_contain_text("Finished step 4/4", timeout=60_000)
    expect(page.locator("#loss-plot .js-plotly-plot")).to_be_visible()
    page.locator("#finetune-steps input").fill("5000")
    page.locator("#finetune-name textarea, #finetune-name input").first.fill("browser-cancel")
    page.click("#finetune-start")
    expect(page.locator("#finetune-status")).to_contain_text("Training:", timeout=60_000)
    page.click("#finetune-cancel")
    expect(page.locator("#finetune-status")).to_contain_text("Cancelled at step", timeout=60_000)
    # the finished model is offered in the chat's lists
    page.get_by_role("tab", name="Chat").click()
    page.locator("#model-left input").click()
    expect(page.get_by_role("option", name=re.compile("browser-run"))).to_be_visible()
