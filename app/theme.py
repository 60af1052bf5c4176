"""The page-wide CSS and the script in the page head, passed to launch() once."""
from viz import COLORS

CSS = f""".ff {{ background: {COLORS['fast-forwarded']}33; border-bottom: 2px solid {COLORS['fast-forwarded']};
border-radius: 3px; }}
.cllm-legend {{ font-size: 0.9em; display: flex; flex-wrap: wrap; gap: 4px 14px; align-items: center; }}
.legend-item {{ display: inline-flex; align-items: center; gap: 5px; }}
.legend-chip {{ display: inline-block; width: 14px; height: 14px; border-radius: 3px; }}"""

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
    // make the shown pass the animation's current frame, so Play continues from it rather than from pass 0
    const slider = fig.layout && fig.layout.sliders && fig.layout.sliders[0];
    if (slider && slider.active !== undefined) {
      window.Plotly.animate(gd, [String(slider.active)],
                            {mode: "immediate", frame: {duration: 0, redraw: true}, transition: {duration: 0}});
    }
    gd.dataset.frames = String(fig.frames.length);
  };
  apply();
  return [];
};
</script>"""
