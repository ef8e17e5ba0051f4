"""The web view in a real headless browser: Debian's Chromium, driven by Playwright.

The server runs in this process (uvicorn in a thread) so it shares the
scripted agents the tasks need. Screenshots of the tasks page and of task
pages go to ``test-artifacts/ui/`` (or ``$THROWAWAY_TEST_ARTIFACTS/ui``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from throwaway import Agent
from throwaway.durable import backend, get_task
from throwaway.testing import ScriptedModel, tool_call
from throwaway.ui import create_app

from .pictures import MAKE_PICTURE
from .test_ui import HOSTILE_CELL, MODEL_HTML

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")

ARTIFACTS = Path(os.environ.get("THROWAWAY_TEST_ARTIFACTS") or Path(__file__).parents[1] / "test-artifacts") / "ui"
CHROMIUM = os.environ.get("THROWAWAY_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live server on a free loopback port, over a fresh data folder; yields its base URL and a release switch."""
    import uvicorn

    tmp = tmp_path_factory.mktemp("browser")
    backend.launch(tmp / "data")
    release = threading.Event()

    def script(messages, info):
        turn = sum(1 for m in messages if m.kind == "response")
        if turn == 1:
            release.wait(120)  # step 2 waits until the test has seen step 1 arrive live
        return [tool_call("execute_python", code="print('step one ran')"),
                tool_call("execute_python", code="print('step two ran')"),
                "All **done**."][turn]

    live_agent = Agent("ui-browser-live", model=ScriptedModel(script))
    app = create_app(agent=live_agent, output_dir=tmp / "out")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "release": release, "tmp": tmp}
    srv.should_exit = True
    thread.join(10)
    backend.shutdown()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install -y chromium, or set THROWAWAY_CHROMIUM"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A page that records every dialog (an alert would mean injected script ran) and console error."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    tab = context.new_page()
    tab.dialogs, tab.errors = [], []
    tab.on("dialog", lambda d: (tab.dialogs.append(d.message), d.dismiss()))
    tab.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    yield tab
    assert tab.dialogs == [], f"script from the guest or the model ran: {tab.dialogs}"
    # The page itself never trips its own Content-Security-Policy.
    assert not [e for e in tab.errors if "Content Security Policy" in e], tab.errors
    context.close()


def test_task_page_shows_code_output_and_a_decoded_image(server, page):
    agent = Agent("ui-browser-picture", model=ScriptedModel([
        [MODEL_HTML, tool_call("execute_python", code=MAKE_PICTURE)],
        tool_call("execute_python", code=HOSTILE_CELL),
        "Your IP, drawn: **203.0.113.7** <script>alert('answer')</script>",
    ]))

    @agent.fs.file("/network/current-ip")
    def current_ip() -> str:
        return "203.0.113.7\n"

    # In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(agent.run, "Make me a picture of my IP address",
                             output_dir=server["tmp"] / "out1").result(timeout=240)
    assert result.status == "done"

    page.goto(server["url"] + "/")
    row = page.locator("table.tasks tbody tr", has_text="Make me a picture")
    assert row.locator(".badge").inner_text() == "done"
    page.screenshot(path=str(ARTIFACTS / "tasks.png"), full_page=True)

    row.locator("a").click()
    page.wait_for_selector("#step-1")
    assert "octets = [int(part) for part in ip_address.split('.')]" in page.locator("#step-1 .code").inner_text()
    assert "Picture saved to /output/ip_address.png" in page.locator("#step-1 pre.stdout").inner_text()
    assert "<script>alert(1)</script>" in page.locator("#step-2 pre.stdout").inner_text()  # shown as text
    assert page.locator(".answer strong").inner_text() == "203.0.113.7"
    # The picture is decoded by the browser, not just an <img> tag: 64 x 32 pixels.
    images = page.locator("#step-1 .written img")
    assert images.count() == 1
    size = images.first.evaluate("img => img.complete ? [img.naturalWidth, img.naturalHeight] : null")
    assert size == [64, 32]
    # The file whose name is an <img onerror> tag is a picture with a strange caption, nothing more.
    assert page.locator("figcaption", has_text="<img src=x onerror=alert(1)>.png").count() >= 1
    gallery = page.locator(".gallery img")
    assert all(gallery.nth(i).evaluate("img => img.naturalWidth") == 64 for i in range(gallery.count()))
    page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)

    page.locator("a", has_text="files").first.click()
    assert page.locator("table.files").inner_text().count("ip_address.png") == 1


def test_watch_live_then_cancel_resume_and_fork_by_clicking(server, page):
    page.goto(server["url"] + "/new")
    page.fill("textarea[name=prompt]", "Print two things, slowly")
    page.click("button[type=submit]")
    page.click("#confirm")  # the confirm step
    # The starting page reloads itself until the task is recorded, then the task page follows it live.
    page.wait_for_selector("#step-1 pre.stdout", timeout=120_000)
    assert "step one ran" in page.locator("#step-1 pre.stdout").inner_text()
    task_id = page.url.rsplit("/", 1)[1]
    assert page.locator("#task-status").inner_text() == "running"
    page.screenshot(path=str(ARTIFACTS / "task-running.png"), full_page=True)

    # The task list, open in another tab, shows it running, and follows it without a reload.
    listing = page.context.new_page()
    listing.goto(server["url"] + "/")
    row = listing.locator("tbody tr", has_text=task_id)
    assert row.locator(".badge").inner_text() == "running"
    listing.evaluate("window.notReloaded = true")

    page.click("text=Cancel…")
    page.click("#confirm")
    server["release"].set()
    # The open page hears the status change over server-sent events and reloads when the task ends.
    page.wait_for_selector("#task-status.cancelled", timeout=60_000)
    assert get_task(task_id).status == "cancelled"
    listing.wait_for_selector(f"tbody tr:has-text('{task_id}') .badge.cancelled", timeout=30_000)
    assert listing.evaluate("window.notReloaded") is True
    listing.close()

    page.click("text=Resume…")
    page.click("#confirm")
    page.wait_for_selector("#task-status.done", timeout=120_000)
    page.wait_for_selector("#step-2 pre.stdout")
    assert "step two ran" in page.locator("#step-2 pre.stdout").inner_text()
    assert page.locator(".answer strong").inner_text() == "done"

    page.locator("#step-2 form.fork button").click()
    page.click("#confirm")
    page.wait_for_url(lambda url: task_id not in url and "/tasks/" in url, timeout=60_000)
    page.wait_for_selector("#task-status.done", timeout=120_000)
    fork_id = page.url.rsplit("/", 1)[1]
    assert get_task(fork_id).forked_from == task_id
    assert "step one ran" in page.locator("#step-1").inner_text()
    page.screenshot(path=str(ARTIFACTS / "task-forked.png"), full_page=True)
