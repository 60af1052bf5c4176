"""The CLLM Lab Blocks: four tabs wired to the library through app/ and viz/."""
import gradio as gr

from app import chat, finetune, learn, model_panel, stepper
from app.models import Models
from app.runs import RUNS, list_runs

MODEL = "model"  # the concurrency_id shared by every event that runs a model


def restore_frames(plot: gr.Plot, *triggers) -> None:
    """Re-add a plot's animation frames in the browser whenever it changes or its tab is shown."""
    js = f"(value) => window.cllmFrames('{plot.elem_id}', value)"
    plot.change(None, [plot], None, js=js, queue=False, api_visibility="private")
    for trigger in triggers:
        trigger(None, [plot], None, js=js, queue=False, api_visibility="private")


def build_demo(models: Models) -> gr.Blocks:
    for run in list_runs(RUNS):  # models trained before a restart stay in the lists
        if run["state"] != "incomplete":
            models.add_trained(run["path"])
    # delete_cache: Gradio removes the files it stored for users (uploads, exports) after an hour
    with gr.Blocks(title="CLLM Lab", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# CLLM Lab · Consistency LLMs, Jacobi decoding, side by side")
        panel_model = model_panel.build(models, MODEL)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat_models = chat.build(models, MODEL)
            with gr.Tab("Jacobi stepper", id="stepper") as stepper_tab:
                stepper_models, stepper_plots = stepper.build(models, MODEL)
            with gr.Tab("Fine-tune", id="finetune"):
                finetune_models = finetune.build(models, chat_models + stepper_models + [panel_model])
            with gr.Tab("Learn", id="learn") as learn_tab:
                learn_plots = learn.build(models, MODEL)
        for plot in stepper_plots:
            restore_frames(plot, stepper_tab.select)
        for plot in learn_plots:
            restore_frames(plot, learn_tab.select)
        dropdowns = chat_models + stepper_models + finetune_models + [panel_model]
        demo.load(lambda: [gr.Dropdown(choices=models.choices())] * len(dropdowns), None, dropdowns,
                  api_visibility="private", queue=False)
    return demo
