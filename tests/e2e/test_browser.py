"""The UI-format workflows in ComfyUI's own front end, in headless Chromium (issue #7: they must load in the UI).

The session ``server`` (the pinned host with this pack) serves the front end it ships with (comfyui-frontend-package
1.32.9). One Chromium (Debian's, driven by Playwright; ``scripts/quickstart.sh`` installs both) opens it once per
module, and every ``workflows/*.json`` is loaded the way the UI loads it, with ``app.loadGraphData`` (the function
behind drag-and-drop, Open and the template browser). For each workflow:

- no missing node types: every type is in ``LiteGraph.registered_node_types``, the front end's own missing-type
  list (its ``afterConfigureGraph`` extension hook) is empty, no node is a red error placeholder (front end 1.45 also
  flags a node whose model file is not on the server, e.g. FLUX Fill's: that alone is no problem), no dialog opened,
  and no toast was raised (the front end's schema check reports e.g. a top-level ``id`` that is not a UUID there);
- the graph is the file's: same node ids and types, same links (by output slot and type, and by input name: input
  slots are renumbered on load, and front end 1.45 renames outputs after the node definition);
- widget values survived: read back by widget *name* they equal the API twin's literal inputs (a value that lands in
  the wrong widget, e.g. after an inserted ``control_after_generate``, shows up here), and the graph serialises back
  to the file's ``widgets_values``;
- the file's groups (one per stage) are there, and a screenshot of the whole graph is written per workflow (the
  ``screenshots`` tmp dir; the log names each file);
- nothing went wrong on the way: no page error, no console error, no HTTP error from the server.

The template browser is tested too: ``GET /api/workflow_templates`` lists the pack with every workflow, the files it
serves are ours (the cards' ``<name>.jpg`` pictures included, ``scripts/make_thumbnails.py``), the dialog shows them
under the pack's category with their pictures loaded (the start-here one with its banner; a screenshot of the
dialog is written to the test's tmp dir), and clicking the inpaint card loads it. Each loaded workflow, exported as
the UI's Export (API) does (``graphToPrompt``), takes its API twin's ``--set`` handles.

Without Playwright or Chromium the module is skipped with the reason; CI has both through quickstart.
"""
from __future__ import annotations

import json
import logging
import math
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import requests

import make_thumbnails as mt
from videopainter.vp_headless import comfy_client as cc

REPO = Path(__file__).resolve().parents[2]
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
PACK = cc.PACK_DIR_NAME  # the folder name under custom_nodes/: the template browser's category for our workflows
SCREENSHOT_WORKFLOW = "videopainter_inpaint"

# Chromium as root needs --no-sandbox. The network is closed, so nothing may phone home. Playwright adds --headless
# (headless=True) and gives every launch() a fresh temporary profile (it refuses --user-data-dir there).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 2400, "height": 1350}
APP_READY_JS = ("() => !!(window.app && window.app.graph && window.app.canvas && window.LiteGraph"
                " && window.app.extensionManager)")
APP_READY_TIMEOUT_MS = 60_000

pytestmark = pytest.mark.e2e
log = logging.getLogger(__name__)

# Records the front end's own list of missing node types after every load (the argument of afterConfigureGraph),
# and every toast it raises (e.g. the schema validator's "Invalid workflow against zod schema" alert, or "Workflow
# Links Fixed"): toasts are not console errors and may vanish before anyone looks at the DOM.
HOOKS_JS = """() => {
  window.__vpMissing = [];
  window.__vpToasts = [];
  app.registerExtension({name: 'test.vpMissingTypes',
    afterConfigureGraph(missing) { window.__vpMissing.push(JSON.parse(JSON.stringify(missing ?? []))); }});
  app.extensionManager.toast.$onAction(({name, args}) => {
    if (name === 'add') window.__vpToasts.push(`${args[0]?.severity}: ${args[0]?.summary}: ${args[0]?.detail}`);
    if (name === 'addAlert') window.__vpToasts.push(`alert: ${args[0]}`);
  });
}"""

# Loads one UI workflow as the UI does and reports what the front end made of it.
LOAD_AND_INSPECT_JS = """async ([data, name]) => {
  window.__vpMissing = [];
  window.__vpToasts = [];
  app.extensionManager.toast.removeAll();
  await app.loadGraphData(data, true, true, name);
  return await window.__vpInspect();
}"""

INSPECT_JS = """() => {
  window.__vpInspect = async () => {
    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
    await new Promise(r => setTimeout(r, 250));  // dialogs are Vue components: let them mount
    const graph = app.graph;
    const serialized = graph.serialize();
    return {
      missing: window.__vpMissing.flat().map(t => typeof t === 'string' ? t : t.type),
      toasts: window.__vpToasts.slice(),
      nodes: graph.nodes.map(n => ({
        id: n.id, type: n.type, has_errors: !!n.has_errors,
        registered: n.type in LiteGraph.registered_node_types,
        widgets: (n.widgets || []).map(w => [w.name, w.value === undefined ? null : w.value]),
        // combo values the server does not list (model files the test's model folder lacks, e.g. FLUX Fill):
        // front end 1.45 flags such a node (has_errors), 1.32 does not
        unlisted: (n.widgets || []).filter(w => {
          const values = typeof w.options?.values === 'function' ? w.options.values() : w.options?.values;
          return w.type === 'combo' && Array.isArray(values) && !values.includes(w.value);
        }).map(w => [w.name, w.value]),
        widgets_values: n.serialize().widgets_values ?? null,
      })),
      // [id, origin id, origin output slot, its type, target id, target input name]. Input slots are renumbered
      // on load (the front end gives every widget an input socket), so inputs are named; outputs keep their order
      // but not their names (1.32 shows the file's names, 1.45 the node definition's), so they go by slot and type.
      links: serialized.links.map(([id, o, os, t, ts]) => [id, o, os, graph.getNodeById(o)?.outputs?.[os]?.type ?? null,
                                                           t, graph.getNodeById(t)?.inputs?.[ts]?.name ?? null]),
      dialogs: [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 500)),
      groups: (graph.groups ?? graph._groups ?? []).map(g => g.title),
    };
  };
}"""


# ---------------------------------------------------------------------------------------------------- helpers


def _same(a: Any, b: Any) -> bool:
    """JSON equality that keeps booleans apart from numbers (True == 1 in Python) and floats within rounding."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def _named_link(ui: dict[str, Any], link: list) -> tuple:
    """A file's link as the test reads one from the graph: (id, origin id, output slot, output type, target id,
    input name)."""
    link_id, origin, origin_slot, target, _target_slot = link[:5]
    nodes = {n["id"]: n for n in ui["nodes"]}
    outputs = nodes.get(origin, {}).get("outputs") or []
    out_type = outputs[origin_slot]["type"] if origin_slot < len(outputs) else None
    in_name = next((i["name"] for i in nodes.get(target, {}).get("inputs") or [] if i.get("link") == link_id), None)
    return (link_id, origin, origin_slot, out_type, target, in_name)


def graph_problems(workflow: Path, got: dict[str, Any]) -> list[str]:
    """Everything about a loaded graph that differs from the file (and its API twin), as readable lines."""
    ui = json.loads(workflow.read_text())
    twin_path = workflow.parent / "api" / workflow.name
    twin = json.loads(twin_path.read_text()) if twin_path.exists() else {}
    problems = []
    if got["missing"]:
        problems.append(f"the front end reports missing node types {got['missing']}")
    if got["toasts"]:
        problems.append(f"toast(s) raised: {got['toasts']}")
    if got["dialogs"]:
        problems.append(f"dialog(s) opened: {got['dialogs']}")

    want = {n["id"]: n for n in ui["nodes"]}
    have = {n["id"]: n for n in got["nodes"]}
    if sorted(want) != sorted(have):
        problems.append(f"node ids: file has {sorted(want)} ({len(want)}), graph has {sorted(have)} ({len(have)})")
    for nid in sorted(set(want) & set(have)):
        w, h = want[nid], have[nid]
        label = f"node {nid} ({w['type']})"
        if h["type"] != w["type"]:
            problems.append(f"{label}: loaded as type {h['type']!r}")
        if not h["registered"] or (h["has_errors"] and not h["unlisted"]):
            problems.append(f"{label}: unknown to the front end (registered={h['registered']}, "
                            f"has_errors={h['has_errors']})")
        elif h["unlisted"]:
            log.info("%s: %s: model(s) not in this server's model folders: %s", workflow.name, label, h["unlisted"])
        # By name, against the API twin: what the server would get for each widget.
        api_node = twin.get(str(nid))
        if api_node and api_node.get("class_type") == w["type"]:
            widgets = dict(h["widgets"])
            for name, value in api_node["inputs"].items():
                if _is_link(value):
                    continue
                if name not in widgets:
                    problems.append(f"{label}: no widget {name!r} (the twin sets it to {value!r}); "
                                    f"widgets: {[n for n, _ in h['widgets']]}")
                elif not _same(widgets[name], value):
                    problems.append(f"{label}: widget {name!r} = {widgets[name]!r}, the file means {value!r}")
        # Round trip for this pack's nodes: the graph serialises back to what the file holds (core nodes may gain
        # front-end-only values, e.g. LoadVideo's upload button serialises as 'image').
        file_values = w.get("widgets_values")
        if w["type"].startswith("VideoPainter") and file_values is not None \
                and not _same(h["widgets_values"], file_values):
            problems.append(f"{label}: widgets_values {h['widgets_values']!r} after loading, "
                            f"{file_values!r} in the file; widgets in order: {[n for n, _ in h['widgets']]}")

    want_groups = sorted(g["title"] for g in ui.get("groups", []))
    if sorted(got["groups"]) != want_groups:
        problems.append(f"groups: file has {want_groups}, graph has {sorted(got['groups'])}")
    want_links = sorted(_named_link(ui, link) for link in ui.get("links", []))
    have_links = sorted(tuple(link) for link in (got["links"] or []))
    if want_links != have_links:
        problems.append(f"links differ: only in file {sorted(set(want_links) - set(have_links))}, "
                        f"only in graph {sorted(set(have_links) - set(want_links))}")
    return problems


class Page:
    """One browser tab on the server's UI, with everything that went wrong in it since the last ``take_errors``."""

    def __init__(self, page, base_url: str):
        self.page = page
        self.base_url = base_url
        self.events: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda e: self.events.append(f"page error: {e}"))
        page.on("response", self._on_response)
        page.on("requestfailed", self._on_request_failed)

    def _local(self, url: str) -> bool:
        return url.startswith(self.base_url)

    def _on_console(self, msg) -> None:
        if msg.type != "error":
            return
        text = msg.text
        # Resource errors carry no URL; _on_response reports them with the URL instead.
        if text.startswith("Failed to load resource"):
            return
        # The front end asks other hosts about node packs (api.comfy.org) and about core templates' model files
        # (huggingface.co, front end 1.45's template browser); the page's CSP (connect-src 'self') blocks that, and
        # the test machine has no network anyway. Only calls to other hosts are excused, never to this server.
        blocked = re.search(r"(?:Connecting to '|Fetch API cannot load )(https?://[^'\s]+)", text)
        if blocked and "Content Security Policy" in text and not self._local(blocked.group(1)):
            return
        self.events.append(f"console error: {text}")

    def _on_response(self, response) -> None:
        if response.status >= 400 and self._local(response.url):
            self.events.append(f"HTTP {response.status}: {response.url}")

    def _on_request_failed(self, request) -> None:
        # ERR_ABORTED: the page dropped the request itself (e.g. card media when the template dialog closes).
        if self._local(request.url) and request.failure != "net::ERR_ABORTED":
            self.events.append(f"request failed ({request.failure}): {request.url}")

    def close_dialogs(self) -> None:
        """Escape whatever dialog an earlier test left open, so each test judges only its own."""
        dialogs = self.page.locator(".p-dialog")
        for _ in range(5):
            if dialogs.count() == 0:
                return
            self.page.keyboard.press("Escape")
            self.page.wait_for_timeout(200)
        raise AssertionError(f"dialogs stay open: {dialogs.all_inner_texts()}")

    def take_errors(self) -> list[str]:
        events, self.events = self.events, []
        return events


# ---------------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (scripts/host_pins.txt; bash scripts/quickstart.sh)")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no `chromium` on PATH (bash scripts/quickstart.sh installs Debian's chromium as root)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def ui(browser, server):
    """The app booted in one tab; fails if booting it went wrong in a way that involves this pack."""
    # A fresh user gets the template browser on first start; mark the tutorial done so every test starts from a
    # bare canvas (the template test opens the browser itself).
    requests.post(server.url + "/api/settings/Comfy.TutorialCompleted", json=True, timeout=10).raise_for_status()
    page = browser.new_page(viewport=VIEWPORT)
    tab = Page(page, server.url)
    page.goto(server.url + "/")
    page.wait_for_function(APP_READY_JS, timeout=APP_READY_TIMEOUT_MS)
    page.evaluate(HOOKS_JS)
    page.evaluate(INSPECT_JS)
    boot = tab.take_errors()
    # Booting front end 1.32.9 against a fresh user dir has its own noise, none of it about this pack: 404s for
    # user.css, userdata/workflows, userdata/subgraphs, comfy.templates.json (they do not exist yet), and a
    # TypeError in the settings store's onChange (useRenderModeSetting sets a setting before it is registered).
    # Only what concerns this pack fails the test; the rest is logged.
    ours = [e for e in boot if "videopainter" in e.lower() or "/object_info" in e or "workflow_templates" in e]
    assert not ours, "booting the UI went wrong for this pack:\n" + "\n".join(ours)
    if boot:
        log.info("front end boot noise (not about this pack):\n%s", "\n".join(boot))
    yield tab
    page.close()


# ---------------------------------------------------------------------------------------------------- tests


def test_templates_endpoint_lists_the_pack_workflows(server):
    r = requests.get(server.url + "/api/workflow_templates", timeout=10)
    r.raise_for_status()
    listed = r.json()
    assert PACK in listed, f"{PACK!r} not among the template packs {sorted(listed)}"
    assert sorted(listed[PACK]) == sorted(p.stem for p in UI_WORKFLOWS)
    for path in UI_WORKFLOWS:
        served = requests.get(f"{server.url}/api/workflow_templates/{PACK}/{path.name}", timeout=10)
        assert served.status_code == 200, (path.name, served.status_code)
        assert served.json() == json.loads(path.read_text()), f"{path.name}: the server serves another file"
        # the card's picture: the front end asks for <name>.jpg (scripts/make_thumbnails.py makes them)
        thumb = requests.get(f"{server.url}/api/workflow_templates/{PACK}/{path.stem}.jpg", timeout=10)
        assert thumb.status_code == 200, f"{path.stem}.jpg: HTTP {thumb.status_code} (no card picture)"
        assert thumb.content == path.with_suffix(".jpg").read_bytes(), f"{path.stem}.jpg: another file served"


def test_pack_loaded_in_the_front_end(ui, server):
    ours = sorted(name for name in cc.object_info(server) if name.startswith("VideoPainter"))
    state = ui.page.evaluate("""() => ({
        registered: Object.keys(LiteGraph.registered_node_types).filter(t => t.startsWith('VideoPainter')).sort(),
        extensions: app.extensions.map(e => e.name).filter(n => n.startsWith('videopainter.')),
    })""")
    assert state["registered"] == ours, "node types the server lists but the front end did not register"
    assert state["extensions"], "the pack's web extension (web/js) did not register"


def test_template_browser_opens_the_inpaint_workflow(ui, tmp_path_factory):
    page = ui.page
    ui.close_dialogs()
    ui.take_errors()
    page.evaluate("() => { window.__vpMissing = []; window.__vpToasts = []; app.extensionManager.toast.removeAll();"
                  " return app.extensionManager.command.execute('Comfy.BrowseTemplates'); }")
    dialog = page.locator(".p-dialog").filter(has=page.get_by_test_id("template-workflows-content"))
    dialog.wait_for(state="visible", timeout=15_000)
    dialog.get_by_text(PACK, exact=True).first.click()
    for path in UI_WORKFLOWS:
        dialog.get_by_test_id(f"template-workflow-{path.stem}").wait_for(state="visible", timeout=10_000)
    # Every card shows its picture (scripts/make_thumbnails.py: a frame of the sample clip, the one-line description
    # and, on the start-here workflow, the START HERE banner): the <img> the card holds loaded our <name>.jpg (its
    # size; the placeholder the front end shows when it fails is another picture).
    cards = {}
    for path in UI_WORKFLOWS:
        card = dialog.get_by_test_id(f"template-workflow-{path.stem}")
        card.scroll_into_view_if_needed()
        # LazyImage shows the fetched <name>.jpg as a blob: URL; a failed one falls back to default-template.png
        img = card.locator("img:not([src*='default-template'])").first
        img.wait_for(state="attached", timeout=10_000)
        page.wait_for_function("(el) => el.complete && el.naturalWidth > 0", arg=img.element_handle(), timeout=10_000)
        cards[path.stem] = img.evaluate("(el) => [el.naturalWidth, el.naturalHeight]")
        if path.stem == mt.START_HERE:  # the picture the browser shows has the START HERE banner (green top rows)
            banner = img.evaluate("(el) => { const c = document.createElement('canvas'); c.width = el.naturalWidth;"
                                  " c.height = el.naturalHeight; const g = c.getContext('2d'); g.drawImage(el, 0, 0);"
                                  " return Array.from(g.getImageData(c.width - 5, 3, 1, 1).data.slice(0, 3)); }")
    shot = tmp_path_factory.mktemp("templates") / "template_browser.png"
    page.screenshot(path=str(shot))
    log.info("screenshot of the template browser: %s", shot)
    assert all(size == [mt.SIZE, mt.SIZE] for size in cards.values()), cards
    assert banner[1] > 140 and banner[0] < 60 and banner[2] < 110, f"no START HERE banner on the card: {banner}"
    dialog.get_by_test_id(f"template-workflow-{SCREENSHOT_WORKFLOW}").click()
    dialog.wait_for(state="hidden", timeout=15_000)
    workflow = REPO / "workflows" / f"{SCREENSHOT_WORKFLOW}.json"
    node_count = len(json.loads(workflow.read_text())["nodes"])
    page.wait_for_function("(n) => app.graph.nodes.length === n", arg=node_count, timeout=15_000)
    got = page.evaluate("() => window.__vpInspect()")
    errors = ui.take_errors()  # the cards' pictures included: a missing <name>.jpg is an HTTP 404 here
    problems = graph_problems(workflow, got)
    sampler = [n for n in got["nodes"] if n["type"] == "VideoPainterSampler"]
    assert len(sampler) == 1
    steps = dict(sampler[0]["widgets"]).get("steps")
    twin = json.loads((REPO / "workflows" / "api" / workflow.name).read_text())
    want_steps = twin[str(sampler[0]["id"])]["inputs"]["steps"]
    screenshot(page, tmp_path_factory.mktemp("browser") / f"{SCREENSHOT_WORKFLOW}.png")
    assert not errors, "errors while opening the template:\n" + "\n".join(errors)
    assert not problems, f"{SCREENSHOT_WORKFLOW} via the template browser:\n" + "\n".join(problems)
    assert steps == want_steps, f"the sampler's steps widget reads {steps!r} after loading, not {want_steps}"


def screenshot(page, path: Path, fit: bool = True) -> Path:
    """The canvas as it is (what the user sees first after opening), or the whole graph (``fit``), at full detail
    (below a font-size threshold LiteGraph draws bare boxes)."""
    page.evaluate("async (fit) => { await app.extensionManager.setting.set('LiteGraph.Canvas.MinFontSizeForLOD', 0);"
                  " if (fit) await app.extensionManager.command.execute('Comfy.Canvas.FitView'); app.canvas.setDirty(true, true); }",
                  fit)
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    log.info("screenshot in the front end: %s", path)
    return path


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.mark.parametrize("workflow", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_loads_in_the_front_end(ui, workflow, screenshots):
    ui.close_dialogs()
    ui.take_errors()
    got = ui.page.evaluate(LOAD_AND_INSPECT_JS, [json.loads(workflow.read_text()), workflow.name])
    first = screenshot(ui.page, screenshots / f"{workflow.stem}.png", fit=False)  # as opened (the file's view)
    whole = screenshot(ui.page, screenshots / f"{workflow.stem}_overview.png")
    assert min(first.stat().st_size, whole.stat().st_size) > 10_000, "a screenshot is (nearly) empty"
    # What the user gets from Workflow > Export (API): the readable titles ("ID LoRA"), which the headless runner's
    # --set handles of the API twin ("id_lora") must still find (cc.find_node ignores case, spaces, underscores).
    exported = ui.page.evaluate("async () => (await app.graphToPrompt()).output")
    errors = ui.take_errors()
    problems = graph_problems(workflow, got)
    assert not errors, f"errors while loading {workflow.name}:\n" + "\n".join(errors)
    assert not problems, f"{workflow.name} in the front end:\n" + "\n".join(problems)
    assert_handles_find_the_exported_nodes(workflow, exported)


def assert_handles_find_the_exported_nodes(workflow: Path, exported: dict) -> None:
    api_path = REPO / "workflows" / "api" / workflow.name
    api = cc.load_workflow(api_path)
    handles = {nid: node["_meta"]["title"] for nid, node in api.items() if node.get("_meta", {}).get("title")}
    found = {nid: cc.find_node(exported, handle) for nid, handle in handles.items()}
    assert found == {nid: nid for nid in handles}, f"{workflow.name}: --set handles find other exported nodes"
    titles = {nid: exported[nid]["_meta"]["title"] for nid in handles}
    assert any(titles[nid] != handles[nid] for nid in handles), f"{workflow.name}: no readable title {titles}"
    sets = cc.demo_sets(api_path)
    if sets:  # the demo sets file's handles apply to the exported workflow as to the twin (raises OverrideError)
        cc.apply_overrides(exported, sets)
