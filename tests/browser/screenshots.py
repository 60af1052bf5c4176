"""Screenshots of every tab into assets/screenshots/, and the app's launch and first-token times.

python tests/browser/screenshots.py [--base M --cllm M] [--prompt TEXT]   (embedded models by default)
"""
import argparse
import json
import os
import re
import sys
import time

from playwright.sync_api import expect, sync_playwright

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]  # tests/helpers.py, and the project it imports from
from helpers import ROOT, free_port, start_app, wait_until_up  # noqa: E402

OUT = os.path.join(ROOT, "assets/screenshots")
ENDED = re.compile("✔ done|■ reached max new tokens|✂ cut by the model's context")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base", default="smollm2-135m-instruct")
    p.add_argument("--cllm", default="smollm2-135m-cllm")
    p.add_argument("--prompt", default=None, help="default: the first example question")
    p.add_argument("--finetune-data", help="jsonl to upload in the Fine-tune tab (default: the bundled split)")
    p.add_argument("--steps", default="20")
    p.add_argument("--skip-finetune", action="store_true", help="keep finetune.png (a run takes long on a 135M base)")
    a = p.parse_args()
    os.makedirs(OUT, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = "/tmp/cllm-lab-screenshots.log"
    proc = start_app(["--port", str(port), "--base", a.base, "--cllm", a.cllm], log,
                     {"CLLM_LAB_RUNS": "/tmp/cllm-lab-screenshot-runs"})
    timings = {}
    try:
        timings["launch_to_ready_s"] = wait_until_up(url, proc, log)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            if a.prompt:
                page.locator("#prompt textarea").fill(a.prompt)
            else:
                page.locator(".gallery-item, [data-testid=examples] button, table.examples td").first.click()
            t = time.perf_counter()
            page.click("#send")
            page.wait_for_function("() => [...document.querySelectorAll('#chat-right [data-testid=bot]')]"
                                   ".some(e => e.innerText.trim().length > 0)", timeout=120_000)
            timings["first_token_in_browser_s"] = time.perf_counter() - t
            for side in ("left", "right"):
                expect(page.locator(f"#metrics-{side}")).to_contain_text(ENDED, timeout=300_000)
            timings["chat_done_s"] = time.perf_counter() - t
            page.screenshot(path=os.path.join(OUT, "chat.png"), full_page=True)

            page.get_by_role("tab", name="Jacobi stepper").click()
            page.get_by_label("compare with a second model").check()
            page.click("#stepper-run")
            expect(page.locator("#stepper-status")).to_contain_text("Pass", timeout=300_000)
            page.click("#stepper-prev-pass")
            time.sleep(2)
            page.screenshot(path=os.path.join(OUT, "stepper.png"), full_page=True)

            page.get_by_label("compare with a second model").uncheck()
            page.locator("#stepper-scheme").get_by_label("sliding").check()
            page.locator("#stepper-candidates input").check()
            page.click("#stepper-run")
            expect(page.locator("#stepper-summary")).to_contain_text("passes a candidate won", timeout=300_000)
            title = page.locator("#trajectory-plot .gtitle").first
            for _ in range(200):  # back from the last pass to the latest one a candidate won
                if "candidate won" in (title.text_content() or ""):
                    break
                page.click("#stepper-prev-pass")
                time.sleep(0.4)
            time.sleep(1.5)
            page.screenshot(path=os.path.join(OUT, "stepper_candidates.png"), full_page=True)

            if not a.skip_finetune:
                finetune_screenshot(page, a)

            page.get_by_role("tab", name="Chat").click()
            page.click("#model-panel button")  # open the model panel
            page.click("#panel-load")
            expect(page.locator("#panel-status")).to_contain_text("Loaded", timeout=120_000)
            page.screenshot(path=os.path.join(OUT, "models.png"), clip={"x": 0, "y": 0, "width": 1400, "height": 560})
            page.click("#model-panel button")

            page.get_by_role("tab", name="Learn").click()
            page.click("#learn-run")
            page.wait_for_selector("#learn-live-plot .js-plotly-plot", timeout=120_000)
            time.sleep(1.5)
            page.screenshot(path=os.path.join(OUT, "learn.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    print(json.dumps(timings | {"base": a.base, "cllm": a.cllm}, indent=1))


def finetune_screenshot(page, a: argparse.Namespace) -> None:
    page.get_by_role("tab", name="Fine-tune").click()
    if a.finetune_data:
        page.get_by_label("uploaded .jsonl").check()
        page.locator("#finetune-upload input[type=file]").set_input_files(a.finetune_data)
    page.locator("#finetune-steps input").fill(a.steps)
    page.locator("#finetune-name textarea, #finetune-name input").first.fill(f"screenshot-{int(time.time())}")
    page.click("#finetune-start")
    expect(page.locator("#finetune-status")).to_contain_text("Finished", timeout=600_000)
    page.screenshot(path=os.path.join(OUT, "finetune.png"), full_page=True)


if __name__ == "__main__":
    main()
