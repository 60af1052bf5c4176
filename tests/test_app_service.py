"""The app as a shared service: upload limits, model allow-list, run ownership and names, many clients at once."""
import threading

import pytest
from gradio_client import Client, handle_file
from helpers import PROMPT, words_jsonl

from app.__main__ import is_loopback
from app.models import Models, Settings
from model_utils.errors import UserError


def finetune(client, base, name, *, steps=4, upload=None, api="/finetune_start"):
    return client.submit(base, "upload" if upload else "gsm8k", upload, 2, 6, 16, steps, 1e-3, "global", 10.0, 0.1,
                         False, True, name, api_name=api)


def test_an_upload_over_the_limit_is_refused_before_it_is_stored(app_url, tiny_models, tmp_path):
    big = tmp_path / "big.jsonl"
    big.write_text('{"question": "w5 w6", "answer": "w7"}\n' * 80_000)  # 3 MB
    with pytest.raises(Exception, match="(?i)size|large|413"):  # the upload itself fails: nothing is stored
        finetune(Client(app_url, verbose=False), tiny_models[0], "big-upload", upload=handle_file(str(big))).result()


def test_only_listed_models_load_when_free_paths_are_off():
    models = Models(Settings(free_models=False, extra=("someone/listed-model",)))
    for name in ("/etc", "/etc/passwd", "assets/models", "someone/unlisted"):
        with pytest.raises(UserError, match="not one of this app's models") as e:
            models.get(name)
        assert name not in str(e.value)  # the same sentence for every path: nothing to probe the server with
    assert "someone/listed-model" in models.choices() and "tiny-arith-cllm" in models.choices()


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("0.0.0.0", False), ("192.0.2.7", False)])
def test_free_model_paths_only_on_loopback_by_default(host, loopback):
    assert is_loopback(host) == loopback


def test_a_run_belongs_to_the_session_that_started_it_and_names_are_never_reused(app_url, tiny_models, tmp_path):
    owner, other = Client(app_url, verbose=False), Client(app_url, verbose=False)
    upload = handle_file(words_jsonl(tmp_path / "data.jsonl"))
    job = finetune(owner, tiny_models[0], "owned-run", steps=5000, upload=upload)
    while not any("Training:" in str(o[0]) for o in job.outputs()):
        pass
    assert "another browser session" in other.predict(api_name="/finetune_cancel")
    assert not job.done()
    assert "Cancelling" in owner.predict(api_name="/finetune_cancel")
    assert job.result()[0].startswith("✔ Cancelled")
    status, *_ = finetune(other, tiny_models[0], "owned-run", upload=upload).result()
    assert "exists already" in status


def test_sixteen_clients_at_once_are_all_answered_and_the_app_serves_after(app_url, tiny_models):
    base, cllm = tiny_models
    answers, errors = [], []

    def one_client():
        try:
            client = Client(app_url, verbose=False)
            left, right, *_, status = client.predict(PROMPT, base, "AR", 4, "sliding", cllm, "Jacobi", 4, "sliding",
                                                     16, api_name="/chat")
            answers.append((left, right, status))
        except Exception as e:  # noqa: BLE001 (a failed client is counted, not raised in the thread)
            errors.append(e)
    threads = [threading.Thread(target=one_client) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors and len(answers) == 16
    assert all(status == "" and left and right for left, right, status in answers)  # queued, none refused
    *_, status = Client(app_url, verbose=False).predict(PROMPT, base, "AR", 4, "sliding", cllm, "Jacobi", 4,
                                                       "sliding", 16, api_name="/chat")
    assert status == ""


def test_a_missing_prompt_gets_one_clear_sentence(app_url, tiny_models):
    base, cllm = tiny_models
    *_, status = Client(app_url, verbose=False).predict(None, base, "AR", 4, "sliding", cllm, "Jacobi", 4, "sliding",
                                                        16, api_name="/chat")
    assert "empty" in status


def test_after_stop_the_metric_lines_say_stopped(app_url, tiny_models):
    import time
    base, cllm = tiny_models
    client = Client(app_url, verbose=False)
    client.predict(api_name="/clear")
    job = client.submit(PROMPT, cllm, "Jacobi", 1, "sliding", cllm, "Jacobi", 1, "sliding", 512, api_name="/chat")
    while len(job.outputs()) < 3:
        time.sleep(0.01)
    job.cancel()
    _, _, m_left, m_right, *_ = job.outputs()[-1]
    assert "streaming…" in m_left + m_right
    left, right = client.predict(m_left, m_right, api_name="/stop")  # what the Stop button sends
    assert "■ stopped" in left and "■ stopped" in right and "streaming" not in left + right


def test_a_binary_upload_gets_one_clear_sentence(app_url, tiny_models, tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b"\xff\xfe\x00\x01binary\x00" * 100)
    status, *_ = finetune(Client(app_url, verbose=False), tiny_models[0], "binary-upload",
                          upload=handle_file(str(path))).result()
    assert status.startswith("⚠") and "not UTF-8" in status
