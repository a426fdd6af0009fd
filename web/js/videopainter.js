// VideoPainter for ComfyUI: shows the text a node returns (its `ui.text`) on the node itself, read-only.
// Used by VideoPainter Window Plan (how frames fall into windows) and VideoPainter Mask Check (per-frame report).
// Public frontend API only: `app` from scripts/app.js and LGraphNode.addDOMWidget. This file is served at
// /extensions/videopainter/js/videopainter.js, so scripts/ is three levels up.
import { app } from "../../../scripts/app.js";

const TEXT_NODES = new Set(["VideoPainterWindowPlan", "VideoPainterMaskCheck"]);
const WIDGET_NAME = "videopainter_text";

function showText(node, text) {
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    const el = document.createElement("textarea");
    el.readOnly = true;
    el.spellcheck = false;
    el.className = "comfy-multiline-input";
    el.style.fontFamily = "monospace";
    el.style.whiteSpace = "pre";
    widget = node.addDOMWidget(WIDGET_NAME, "customtext", el, {
      getValue: () => el.value,
      setValue: (v) => {
        el.value = v;
      },
    });
    widget.serialize = false; // a preview, never saved in the workflow's widgets_values
  }
  widget.value = text;
  node.setSize?.([Math.max(node.size[0], 360), Math.max(node.size[1], node.computeSize()[1])]);
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "videopainter.TextPreview",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!TEXT_NODES.has(nodeData?.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      const text = message?.text;
      if (text === undefined) return;
      showText(this, Array.isArray(text) ? text.join("\n") : String(text));
    };
  },
});
