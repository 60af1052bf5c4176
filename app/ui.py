"""The CLLM Lab Blocks: four tabs wired to the library through app/ and viz/."""
import gradio as gr

from app import chat, finetune, learn, stepper
from app.models import Models

MODEL = "model"  # the concurrency_id shared by every event that runs a model

# gr.Plot draws figures with Plotly.react and drops their frames (ui-stack.md): put them back after
# each update so Play and the figure's own slider work.
HEAD = """<script>
window.cllmFrames = function (id, value) {
  if (!value || !value.plot) return [];
  const fig = JSON.parse(value.plot);
  if (!fig.frames || !fig.frames.length) return [];
  const want = fig.layout && fig.layout.title ? fig.layout.title.text : undefined;
  let tries = 0;
  const apply = () => {
    const gd = document.querySelector(`#${id} .js-plotly-plot`);
    const shown = gd && gd.layout && gd.layout.title ? gd.layout.title.text : undefined;
    if (!gd || !gd._fullLayout || !window.Plotly || shown !== want) {
      if (tries++ < 100) setTimeout(apply, 100);
      return;
    }
    window.Plotly.deleteFrames(gd);
    window.Plotly.addFrames(gd, fig.frames);
    gd.dataset.frames = String(fig.frames.length);
  };
  apply();
  return [];
};
</script>"""


def restore_frames(plot: gr.Plot, *triggers) -> None:
    """Re-add a plot's animation frames in the browser whenever it changes or its tab is shown."""
    js = f"(value) => window.cllmFrames('{plot.elem_id}', value)"
    plot.change(None, [plot], None, js=js, queue=False, api_visibility="private")
    for trigger in triggers:
        trigger(None, [plot], None, js=js, queue=False, api_visibility="private")


def build_demo(models: Models) -> gr.Blocks:
    with gr.Blocks(title="CLLM Lab") as demo:
        gr.Markdown("# CLLM Lab · Consistency LLMs, Jacobi decoding, side by side")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat_models = chat.build(models, MODEL)
            with gr.Tab("Jacobi stepper", id="stepper") as stepper_tab:
                stepper_models, stepper_plots = stepper.build(models, MODEL)
            with gr.Tab("Fine-tune", id="finetune"):
                finetune_models = finetune.build(models, chat_models + stepper_models)
            with gr.Tab("Learn", id="learn") as learn_tab:
                learn_plots = learn.build(models, MODEL)
        for plot in stepper_plots:
            restore_frames(plot, stepper_tab.select)
        for plot in learn_plots:
            restore_frames(plot, learn_tab.select)
        dropdowns = chat_models + stepper_models + finetune_models
        demo.load(lambda: [gr.Dropdown(choices=models.choices())] * len(dropdowns), None, dropdowns,
                  api_visibility="private", queue=False)
    return demo
