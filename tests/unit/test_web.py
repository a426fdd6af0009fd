"""The front-end files of the pack: a help page for every registered node, and the small JS extension.

ComfyUI's front end (1.32, shipped with the pinned host) fetches a custom node's help from
``/extensions/<pack>/docs/<NodeId>/<locale>.md``, then ``/extensions/<pack>/docs/<NodeId>.md``; ``WEB_DIRECTORY``
(``./web``) is served at ``/extensions/<pack>/``, so the pages live in ``web/docs/<NodeId>.md``.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WEB = REPO / "web"
JS = WEB / "js" / "videopainter.js"


def node_ids() -> list[str]:
    from videopainter.nodes import NODE_LIST

    return [node.define_schema().node_id for node in NODE_LIST]


def test_web_directory_is_declared():
    assert re.search(r'^WEB_DIRECTORY = "\./web"$', (REPO / "__init__.py").read_text(), re.M)


@pytest.mark.parametrize("node_id", node_ids())
def test_every_node_has_a_help_page(node_id: str):
    page = WEB / "docs" / f"{node_id}.md"
    assert page.is_file(), f"web/docs/{node_id}.md is missing: every node needs a help page"
    text = page.read_text()
    assert text.startswith("# "), f"{page.name}: should start with a '# <display name>' heading"
    from videopainter.nodes import NODE_LIST

    schema = next(n.define_schema() for n in NODE_LIST if n.define_schema().node_id == node_id)
    assert text.splitlines()[0] == f"# {schema.display_name}", f"{page.name}: heading is not the display name"
    assert "## Inputs" in text or not schema.inputs, f"{page.name}: no '## Inputs' section"
    documented = set(re.findall(r"\*\*(\w+)\*\*", text))
    undocumented = [i.id for i in schema.inputs if i.id not in documented]
    assert not undocumented, f"{page.name}: inputs not described: {undocumented}"


def test_no_help_page_for_a_node_that_does_not_exist():
    pages = {p.stem for p in (WEB / "docs").glob("*.md")}
    assert pages - set(node_ids()) == set(), "help pages without a node (renamed or removed node?)"


def test_js_extension_uses_the_public_app_only():
    text = JS.read_text()
    # served at /extensions/videopainter/js/videopainter.js: the app shim is /scripts/app.js, three levels up
    imports = re.findall(r'^import .* from "([^"]+)";$', text, re.M)
    assert imports == ["../../../scripts/app.js"], imports
    assert "app.registerExtension(" in text
    assert "VideoPainterWindowPlan" in text and "onExecuted" in text
    assert "readOnly = true" in text


# A fake front end in the served layout: /scripts/app.js (records the extension) and /extensions/videopainter/js/.
FAKE_APP = "export const app = { registerExtension(ext) { globalThis.registered.push(ext); } };\n"
HARNESS = r"""
globalThis.registered = [];
globalThis.document = { createElement: (tag) => ({ tag, style: {}, value: "" }) };
await import("./extensions/videopainter/js/videopainter.js");
const [ext] = globalThis.registered;
function nodeType() {
  const calls = [];
  const proto = {
    size: [200, 100],
    computeSize() { return [200, 160]; },
    setSize(s) { this.size = s; },
    setDirtyCanvas() {},
    onExecuted(message) { calls.push(message); },
    addDOMWidget(name, type, element, options) {
      const w = { name, type, element, options };
      Object.defineProperty(w, "value", { get: () => options.getValue(), set: (v) => options.setValue(v) });
      (this.widgets ??= []).push(w);
      return w;
    },
  };
  return { prototype: proto, calls };
}
const plan = nodeType(), other = nodeType();
await ext.beforeRegisterNodeDef(plan, { name: "VideoPainterWindowPlan" });
await ext.beforeRegisterNodeDef(other, { name: "KSampler" });
const node = Object.create(plan.prototype);
node.onExecuted({ text: ["fixed plan: 97 input frames -> 2 window(s)", "line 2"] });
node.onExecuted({ text: ["second run"] });
const o = Object.create(other.prototype);
o.onExecuted({ text: ["x"] });
console.log(JSON.stringify({
  name: ext.name,
  widgets: node.widgets.map((w) => [w.name, w.type, w.value, w.element.readOnly, w.serialize]),
  chained: plan.calls.length,
  other_widgets: o.widgets ?? null,
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the extension")
def test_js_extension_shows_the_text_on_the_node(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "app.js").write_text(FAKE_APP)
    served = tmp_path / "extensions" / "videopainter" / "js"
    served.mkdir(parents=True)
    shutil.copy(JS, served / "videopainter.js")
    (tmp_path / "package.json").write_text('{"type": "module"}')
    (tmp_path / "harness.js").write_text(HARNESS)
    done = subprocess.run(["node", "harness.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["name"] == "videopainter.TextPreview"
    # one read-only widget, updated in place on every run, never saved in the workflow
    assert result["widgets"] == [["videopainter_text", "customtext", "second run", True, False]]
    assert result["chained"] == 2  # the node's own onExecuted still runs
    assert result["other_widgets"] is None  # other nodes are left alone
