"""The model panel: how models load (device, dtype, 4/8-bit), loading one now with progress, unloading."""
from functools import partial

import gradio as gr

from app.models import Models
from model_utils.errors import UserError
from model_utils.loading import DEVICES, DTYPES

QUANTISATION = {"none": None, "8-bit": 8, "4-bit": 4}
BITS_NAME = {bits: name for name, bits in QUANTISATION.items()}


def loaded_table(models: Models) -> list[list]:
    """One row per loaded model: name, device, dtype, quantisation, parameters (millions)."""
    rows = []
    for (name, _, _, bits), (model, _) in reversed(models.cache.items()):
        rows.append([name, str(model.device), str(model.dtype).removeprefix("torch."),
                     BITS_NAME[bits], round(model.num_parameters() / 1e6, 1)])
    return rows


def settings_line(models: Models) -> str:
    s = models.settings
    return (f"Models load on **{s.device}** in **{s.dtype}**, quantisation **{BITS_NAME[s.bits]}**; "
            f"{len(models.cache)} loaded (up to {models.capacity} are kept, the least recently used goes first).")


def check_allowed(models: Models) -> None:
    """On a shared app the settings belong to whoever started it: visitors would change them for everyone."""
    if not models.settings.free_models:
        raise UserError("This app is shared: its model settings are fixed by whoever started it (start it on "
                        "127.0.0.1, or with --allow-any-model, to change them here).")


def load(models: Models, name: str, device: str, dtype: str, quantisation: str, progress=gr.Progress()):  # noqa: B008
    """Make these the settings every later load uses, and load `name` with them now."""
    try:
        check_allowed(models)
        if device not in DEVICES or dtype not in ("auto", *DTYPES) or quantisation not in QUANTISATION:
            raise UserError(f"Choose a device ({', '.join(DEVICES)}), a dtype and a quantisation from the lists.")
        with models.turn("loading a model"):
            previous = (models.settings.device, models.settings.dtype, models.settings.bits)
            s = models.settings
            s.device, s.dtype, s.bits = device, dtype, QUANTISATION[quantisation]
            progress(0.1, desc=f"loading {name}")
            try:
                model, _ = models.get(name)
            except UserError:
                models.settings.device, models.settings.dtype, models.settings.bits = previous
                raise
            progress(1.0)
        message = (f"✔ Loaded `{name}` on {model.device} in {str(model.dtype).removeprefix('torch.')}"
                   f" ({model.num_parameters() / 1e6:.1f}M parameters). {settings_line(models)}")
    except UserError as e:
        gr.Warning(str(e))
        message = f"⚠ {e}"
    return message, loaded_table(models)


def unload(models: Models, name: str):
    """Drop every loaded copy of `name` (it loads again when next used)."""
    try:
        check_allowed(models)
        with models.turn("unloading a model"):
            keys = [k for k in models.cache if k[0] == (name or "").strip()]
            if not keys:
                raise UserError(f"{name!r} is not loaded.")
            for key in keys:
                del models.cache[key]
        message = f"✔ Unloaded `{name}` ({len(keys)} cop{'y' if len(keys) == 1 else 'ies'}). {settings_line(models)}"
    except UserError as e:
        gr.Warning(str(e))
        message = f"⚠ {e}"
    return message, loaded_table(models)


def build(models: Models, concurrency_id: str) -> gr.Dropdown:
    """The panel (an accordion above the tabs); returns its model list."""
    s = models.settings
    with gr.Accordion("Models: device, dtype, 4/8-bit, load and unload", open=False, elem_id="model-panel"):
        with gr.Row():
            name = gr.Dropdown(models.choices(), value=s.cllm, label="model (list entry, hub name or local path)",
                               allow_custom_value=True, scale=3, elem_id="panel-model")
            device = gr.Dropdown(list(DEVICES), value=s.device, label="device", elem_id="panel-device")
            dtype = gr.Dropdown(["auto", *DTYPES], value=s.dtype, label="dtype", elem_id="panel-dtype")
            bits = gr.Radio(list(QUANTISATION), value=BITS_NAME[s.bits],
                            label="quantisation (bitsandbytes)", elem_id="panel-bits")
        with gr.Row():
            load_btn = gr.Button("Load", variant="primary", elem_id="panel-load")
            unload_btn = gr.Button("Unload", elem_id="panel-unload")
        status = gr.Markdown(settings_line(models), label="model status", elem_id="panel-status")
        table = gr.Dataframe(loaded_table(models), headers=["model", "device", "dtype", "quantisation",
                                                            "parameters (M)"],
                             label="loaded models", interactive=False, elem_id="panel-loaded")
    load_btn.click(partial(load, models), [name, device, dtype, bits], [status, table], api_name="models_load",
                   concurrency_id=concurrency_id, show_progress_on=[status])
    unload_btn.click(partial(unload, models), [name], [status, table], api_name="models_unload",
                     concurrency_id=concurrency_id)
    return name
