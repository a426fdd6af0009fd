"""The first hour in the browser: the host ``scripts/ui.sh`` opens, the demo workflow it leaves in the Workflows sidebar
(``demo_videopainter_inpaint``, the demo sets applied), Run in ComfyUI's own front end (headless Chromium), and the
output video shown in the Save Video node; the host's log has no import failure.

Slow (one full run of the demo workflow on the CPU, minutes on a busy machine): marked ``slow``. Skipped without
Playwright or Chromium like tests/e2e/test_browser.py.
"""
from __future__ import annotations

import logging
import shutil
import time

import pytest
import requests

import ui_host
from videopainter.vp_headless import comfy_client as cc

pytestmark = pytest.mark.slow
log = logging.getLogger(__name__)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
APP_READY_JS = "() => !!(window.app && window.app.graph && window.app.canvas && window.app.extensionManager)"
RUN_TIMEOUT_S = 900
DEMO = "demo_videopainter_inpaint.json"


@pytest.fixture(scope="module")
def page_and_server(tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (scripts/host_pins.txt)")
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no `chromium` on PATH (bash scripts/quickstart.sh installs it as root)")
    base, models = tmp_path_factory.mktemp("ui_base"), tmp_path_factory.mktemp("ui_models")
    server, info = ui_host.start(base, models, cc.free_port(), cpu=True)
    with server, sync_api.sync_playwright() as p:
        requests.post(server.url + "/api/settings/Comfy.TutorialCompleted", json=True, timeout=10).raise_for_status()
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(server.url + "/")
            page.wait_for_function(APP_READY_JS, timeout=60_000)
            yield page, server, info, tmp_path_factory.mktemp("shots")
        finally:
            browser.close()


def test_run_on_the_demo_workflow_shows_the_video(page_and_server):
    page, server, info, shots = page_and_server
    assert info["host_noise"] == [], info["host_noise"]
    workflow = requests.get(f"{server.url}/api/userdata/workflows%2F{DEMO}", timeout=10).json()
    # Opening it from the Workflows sidebar loads the saved file with loadGraphData, as here.
    page.evaluate("async ([data, name]) => { await app.loadGraphData(data, true, true, name); }",
                  [workflow, DEMO.removesuffix(".json")])
    page.wait_for_function("(n) => app.graph.nodes.length === n", arg=len(workflow["nodes"]), timeout=15_000)
    page.screenshot(path=str(shots / "demo_loaded.png"))
    t0 = time.monotonic()
    page.evaluate("() => app.extensionManager.command.execute('Comfy.QueuePrompt')")  # what the Run button runs
    save_id = next(n["id"] for n in workflow["nodes"] if n["type"] == "SaveVideo")
    for _ in range(30):  # the server took the prompt (a refused one opens a dialog and queues nothing)
        queue = requests.get(server.url + "/queue", timeout=10).json()
        if queue["queue_running"] or queue["queue_pending"] or requests.get(server.url + "/history", timeout=10).json():
            break
        time.sleep(1)
    else:
        dialogs = page.evaluate("() => [...document.querySelectorAll('.p-dialog')].map(d => d.innerText)")
        raise AssertionError(f"Run queued nothing; dialogs: {dialogs}")
    files = []
    while not files and time.monotonic() - t0 < RUN_TIMEOUT_S:
        time.sleep(3)
        history = requests.get(server.url + "/history", timeout=10).json()
        failed = [h["status"] for h in history.values() if h.get("status", {}).get("status_str") == "error"]
        assert not failed, failed
        outputs = [o for h in history.values() for nid, o in h.get("outputs", {}).items() if nid == str(save_id)]
        files = [f for o in outputs for f in (o.get("images", []) + o.get("videos", []) + o.get("gifs", []))]
    seconds = time.monotonic() - t0
    assert files and files[0]["filename"].endswith(".mp4"), f"no video from the Save Video node after {seconds:.0f} s"
    # The front end shows it in the Save Video node: its outputs (from the "executed" message) name the file, and a
    # <video> plays it from /view (the Load Video nodes' previews are other <video>s, so match the file name).
    name = files[0]["filename"]
    shown = "([id, name]) => [...document.querySelectorAll('video, img')].some(v => decodeURIComponent(v.currentSrc" \
            " || v.src || v.querySelector('source')?.src || '').includes(name))"
    outputs_js = "([id, name]) => JSON.stringify((app.nodeOutputs ?? {})[String(id)] ?? {}).includes(name)"
    page.wait_for_function(outputs_js, arg=[save_id, name], timeout=30_000)  # the node got its output
    # The node draws its preview when it is drawn: bring the whole graph into view, as a user looking at it would.
    page.evaluate("async () => { await app.extensionManager.command.execute('Comfy.Canvas.FitView');"
                  " app.canvas.setDirty(true, true); app.canvas.draw(true, true); }")
    try:
        page.wait_for_function(shown, arg=[save_id, name], timeout=30_000)
    except Exception:
        seen = page.evaluate(
            "([id]) => ({media: [...document.querySelectorAll('video, img, source')].map(v => v.currentSrc || v.src),"
            " outputs: JSON.stringify(app.nodeOutputs ?? null).slice(0, 2000),"
            " node: Object.keys(app.graph.getNodeById(id) ?? {}), imgs: (app.graph.getNodeById(id)?.imgs ?? []).map(i => i.src),"
            " widgets: (app.graph.getNodeById(id)?.widgets ?? []).map(w => [w.name, w.type])})", [save_id])
        raise AssertionError(f"the Save Video node does not show {name}: {seen}")
    page.screenshot(path=str(shots / "demo_done.png"))
    log.info("demo workflow ran in the browser in %.0f s; screenshots in %s", seconds, shots)
    video = requests.get(server.url + "/view", params={"filename": files[0]["filename"],
                                                       "subfolder": files[0].get("subfolder", ""), "type": "output"},
                         timeout=30)
    assert video.status_code == 200 and len(video.content) > 1000
    assert ui_host.host_noise(server.log_path.read_text(errors="replace")) == []
