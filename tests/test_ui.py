"""The web view, over HTTP: real tasks (scripted model, real sandbox, real SQLite), every route, hostile content.

The tasks are made once for the module: one that prints, draws a PNG and
writes files whose names and contents try to inject HTML and script; one
that fails. Live steps, cancel, resume and fork run a task of their own.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from throwaway import Agent
from throwaway.durable import backend, checkpoints, get_task
from throwaway.fs import MountSpec
from throwaway.testing import ScriptedModel, ScriptExhausted, tool_call
from throwaway.ui import create_app
from throwaway.ui.files import Snapshots, safe_zip_name, sniff_image
from throwaway.ui.security import PAGE_POLICY

from .pictures import MAKE_PICTURE, png_size

# Scripted models only: a real provider call from this module is a bug.
pytestmark = pytest.mark.usefixtures("no_real_models")


LOOPBACK = "http://127.0.0.1"

HOSTILE_NAME = "<img src=x onerror=alert(1)>.png"
HOSTILE_CELL = f'''
import shutil
print("<script>alert(1)</script>")
print("<b>not bold</b>", file=__import__("sys").stderr)
shutil.copy("/output/ip_address.png", {"/output/" + HOSTILE_NAME!r})
open("/output/evil.svg", "w").write('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
open("/output/page.html", "w").write("<html><script>alert(1)</script></html>")
open("/output/fake.png", "w").write("<script>alert(1)</script>")
"<img src=x onerror=alert(1)>"
'''
MODEL_HTML = "Look: <script>alert('model')</script> <img src=x onerror=alert(2)> **bold** [link](javascript:alert(3))"
ANSWER = "The picture is in /output/ip_address.png <iframe src=//evil></iframe>"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The backend, with a finished picture task and a failed task in it."""
    tmp = tmp_path_factory.mktemp("ui")
    rt = backend.launch(tmp / "data")
    model = ScriptedModel([
        tool_call("execute_python", code="print('Current IP Address:', open('/network/current-ip').read().strip())"),
        [MODEL_HTML, tool_call("execute_python", code=MAKE_PICTURE)],
        tool_call("execute_python", code=HOSTILE_CELL),
        tool_call("execute_python", code="1 / 0"),
        ANSWER,
    ])
    agent = Agent("ui-picture", model=model)

    @agent.fs.file("/network/current-ip", description="this machine's public IP")
    def current_ip() -> str:
        return "203.0.113.7\n"

    picture = agent.run("Make me a picture of my IP <script>alert('prompt')</script>", output_dir=tmp / "out")
    assert picture.status == "done", picture

    failing = Agent("ui-failing", model=ScriptedModel([tool_call("execute_python", code="print('only step')")]))
    with pytest.raises(ScriptExhausted):  # the script runs out at step 2: the model step raises
        failing.run("a task that fails", task_id="ui-failed-task", output_dir=tmp / "out2")
    yield {"rt": rt, "picture": picture.task_id, "failed": "ui-failed-task", "tmp": tmp}
    backend.shutdown()


@pytest.fixture
def client(made):
    with TestClient(create_app(), base_url=LOOPBACK) as c:
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def assert_no_injection(html: str) -> None:
    """Nothing the guest or the model wrote became markup."""
    for bad in ("<script>alert", "<img src=x", "onerror=alert(1)>", "<iframe", 'href="javascript:', "<b>not bold"):
        assert bad not in html, bad
    # The only scripts are the page's own static file.
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/app.js" defer>']


# --- pages -----------------------------------------------------------------------


def test_tasks_page_lists_tasks_newest_first_and_filters_by_status(client, made):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == PAGE_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert html.index(made["failed"]) < html.index(made["picture"])  # newest first
    assert "Make me a picture of my IP &lt;script&gt;" in html
    assert_no_injection(html)
    assert 'badge done' in html and 'badge failed' in html

    failed_only = client.get("/", params={"status": "failed"}).text
    assert made["failed"] in failed_only and made["picture"] not in failed_only
    rows = client.get("/", params={"partial": "rows"})
    assert rows.headers["x-live"] == "0" and "<html" not in rows.text and made["picture"] in rows.text


def test_task_page_shows_code_output_image_answer_and_is_escaped(client, made):
    page = client.get(f"/tasks/{made['picture']}")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == PAGE_POLICY
    html = page.text
    # The code, highlighted; the output; the value; the error with its traceback.
    assert '<span class="n">ip_address</span>' in html or "ip_address" in html
    assert '<div class="highlight">' in html
    assert "Current IP Address: 203.0.113.7" in html
    assert "Picture saved to /output/ip_address.png" in html
    assert "ZeroDivisionError" in html and "Traceback" in html
    # Markdown is rendered, raw HTML in it is not.
    assert "<strong>bold</strong>" in html
    assert "&lt;script&gt;alert('model')&lt;/script&gt;" in html
    assert 'href="javascript:' not in html
    # The answer on top, then the artifacts, then the steps; tokens and timings.
    assert html.index('class="answer"') < html.index('class="gallery"') < html.index('id="step-1"')
    assert "&lt;iframe src=//evil&gt;&lt;/iframe&gt;" in html
    assert re.search(r"\d+ in / \d+ out tokens", html)
    # The picture inline, the hostile file name escaped, the SVG only as a link.
    images = re.findall(r'<img src="([^"]+)"', html)
    assert any(src.endswith("/raw/output/ip_address.png") for src in images)
    assert any("%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.png" in src for src in images)
    assert not any("evil.svg" in src or "fake.png" in src or "page.html" in src for src in images)
    assert "/raw/output/evil.svg?download=1" in html
    assert "/output/&lt;img src=x onerror=alert(1)&gt;.png" in html
    assert_no_injection(html)

    # Each image the page shows is a real PNG, decoded.
    for src in images:
        picture = client.get(src)
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
        assert png_size(picture.content) == (64, 32)
        assert picture.headers["content-disposition"].startswith("inline;")


def test_failed_task_page_shows_the_error_and_offers_resume_and_fork(client, made):
    html = client.get(f"/tasks/{made['failed']}").text
    assert "badge failed" in html and "ScriptExhausted" in html
    assert "only step" in html
    assert f'action="/tasks/{made["failed"]}/resume"' in html
    assert f'action="/tasks/{made["failed"]}/fork"' in html
    assert f'action="/tasks/{made["failed"]}/cancel"' not in html


def test_prefix_of_a_task_id_finds_it_and_bad_ids_are_404(client, made):
    assert client.get(f"/tasks/{made['picture'][:6]}").status_code == 200
    for bad in ("no-such-task", "%3Cscript%3E", "..%2F..%2Fetc", "a" * 300):
        response = client.get(f"/tasks/{bad}")
        assert response.status_code == 404, bad
        assert "<script>" not in response.text
        assert response.headers["content-security-policy"] == PAGE_POLICY
    assert client.get("/tasks/no-such-task/files").status_code == 404
    assert client.get("/tasks/no-such-task/files/1/raw/output/x.png").status_code == 404
    assert client.get("/tasks/no-such-task/events").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_files_at_a_step(client, made):
    task = made["picture"]
    before = client.get(f"/tasks/{task}/files", params={"step": 1}).text
    after = client.get(f"/tasks/{task}/files", params={"step": 3}).text
    assert "ip_address.png" not in before
    assert "ip_address.png" in after and "evil.svg" in after
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in after
    assert_no_injection(after)
    # The latest step by default.
    assert "ip_address.png" in client.get(f"/tasks/{task}/files").text
    assert client.get(f"/tasks/{task}/files", params={"step": "x"}).status_code == 404


def test_file_download_and_what_is_not_in_the_snapshot(client, made):
    base = f"/tasks/{made['picture']}/files/3/raw"
    download = client.get(f"{base}/output/ip_address.png", params={"download": "1"})
    assert download.headers["content-disposition"] == 'attachment; filename="ip_address.png"; ' \
                                                      "filename*=UTF-8''ip_address.png"
    assert download.headers["content-type"] == "application/octet-stream"
    assert png_size(download.content) == (64, 32)
    # At step 1 the picture did not exist yet.
    assert client.get(f"/tasks/{made['picture']}/files/1/raw/output/ip_address.png").status_code == 404
    for outside in ("output/../../etc/passwd", "etc/passwd", "output/missing.png", "output", "%2e%2e/%2e%2e/etc/passwd",
                    "output/ip_address.png/../../../../etc/passwd"):
        response = client.get(f"{base}/{outside}")
        assert response.status_code == 404, outside
        assert b"root:" not in response.content
    assert client.get(f"/tasks/{made['picture']}/files/99/raw/output/ip_address.png").status_code == 200  # latest at 99
    assert client.get(f"/tasks/{made['picture']}/files/0/raw/output/ip_address.png").status_code == 404


def test_guest_files_that_could_run_script_are_downloads(client, made):
    base = f"/tasks/{made['picture']}/files/3/raw/output"
    for name in ("evil.svg", "page.html", "fake.png"):
        response = client.get(f"{base}/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/octet-stream", name
        assert response.headers["content-disposition"].startswith("attachment;"), name
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"]
    hostile = client.get(f"{base}/%3Cimg%20src%3Dx%20onerror%3Dalert%281%29%3E.png")
    assert hostile.headers["content-type"] == "image/png"
    disposition = hostile.headers["content-disposition"]
    assert '"_img_src_x_onerror_alert_1__.png"' in disposition and "<" not in disposition


def test_zip_of_the_whole_tree(client, made):
    response = client.get(f"/tasks/{made['picture']}/files/3/zip")
    assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith("attachment;")
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    names = archive.namelist()
    assert "output/ip_address.png" in names and f"output/{HOSTILE_NAME}" in names
    assert all(not n.startswith("/") and ".." not in n.split("/") for n in names)
    assert png_size(archive.read("output/ip_address.png")) == (64, 32)
    assert client.get(f"/tasks/{made['picture']}/files/0/zip").status_code == 404


def test_a_hostile_manifest_never_reaches_the_zip_or_the_host(made):
    """The manifest came from the guest: entries that climb out, or are malformed, are dropped."""
    blobs = made["rt"].blobs
    sha = blobs.put(b"secret")
    manifest = {"version": 1, "entries": [
        ["d", "/output", 0o777, 0, 0], ["f", "/output/ok.txt", 0o666, 0, sha],
        ["f", "/output/../../etc/evil", 0o666, 0, sha], ["f", "/output/./x", 0o666, 0, sha],
        ["f", "relative", 0o666, 0, sha], ["f", "/output/bad-sha", 0o666, 0, "../../etc/passwd"],
        ["x", "/weird", 0, 0, 0], "not a list", ["f", "/output/a\\b", 0o666, 0, sha],
    ]}
    digest = blobs.put(json.dumps(manifest).encode())
    snapshots = Snapshots(blobs)
    paths = [e.path for e in snapshots.tree(digest)]
    assert "relative" not in paths and "/output/bad-sha" not in paths and "/weird" not in paths
    names = zipfile.ZipFile(io.BytesIO(snapshots.zip(digest))).namelist()
    assert names == ["output/", "output/ok.txt"]
    assert safe_zip_name("/a/../b") is None and safe_zip_name("/a//b") is None and safe_zip_name("/a/b") == "a/b"
    with pytest.raises(KeyError):
        snapshots.tree("0" * 64)
    with pytest.raises(KeyError):
        snapshots.tree("../../etc/passwd")


def test_sniffing_is_by_bytes_not_by_name():
    assert sniff_image(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_image(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_image(b"GIF89a..") == "image/gif"
    assert sniff_image(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image(b'<svg xmlns="http://www.w3.org/2000/svg">') is None
    assert sniff_image(b"<html>") is None and sniff_image(b"") is None


def test_static_files_and_headers(client):
    script = client.get("/static/app.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert script.headers["content-security-policy"] == PAGE_POLICY
    assert client.get("/pygments.css").headers["content-type"].startswith("text/css")
    assert client.get("/static/../app.py").status_code == 404


def test_events_of_a_finished_task_end_at_once(client, made):
    with client.stream("GET", f"/tasks/{made['picture']}/events", params={"seen": 0}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    events = [line.removeprefix("event: ") for line in body.splitlines() if line.startswith("event: ")]
    assert events[-1] == "end" and events.count("step") == 5 and "status" in events
    assert "<script>alert" not in body


# --- safety -----------------------------------------------------------------------


def test_loopback_binding_answers_only_loopback_host_names(made):
    app = create_app()
    for host in ("127.0.0.1", "localhost:8321", "[::1]:8321"):
        with TestClient(app, base_url=f"http://{host}") as c:
            assert c.get("/").status_code == 200, host
    for host in ("evil.example", "evil.example:8321", "127.0.0.1.evil.example", "testserver"):
        with TestClient(app, base_url=f"http://{host}") as c:
            response = c.get("/")
            assert response.status_code == 421, host
            assert made["picture"] not in response.text


def test_other_bindings_need_the_token(made):
    app = create_app(token="sekrit-token")
    with TestClient(app, base_url="http://192.0.2.10:8321") as c:
        assert c.get("/").status_code == 401
        assert c.get(f"/tasks/{made['picture']}").status_code == 401
        assert c.get("/static/app.js").status_code == 401
        assert c.get("/", params={"token": "wrong"}).status_code == 401
        c.cookies.set("throwaway_ui_token", "wrong")
        assert c.get("/").status_code == 401
        c.cookies.clear()
        trade = c.get("/", params={"token": "sekrit-token", "status": "done"}, follow_redirects=False)
        assert trade.status_code == 303 and trade.headers["location"] == "/?status=done"
        assert "HttpOnly" in trade.headers["set-cookie"] and "SameSite=Strict" in trade.headers["set-cookie"]
        page = c.get("/", params={"token": "sekrit-token"})  # follows the redirect with the cookie
        assert page.status_code == 200 and made["picture"] in page.text
        assert c.get(f"/tasks/{made['picture']}").status_code == 200


def test_posts_need_the_csrf_token_and_our_origin(client, made):
    task = made["failed"]
    assert client.post(f"/tasks/{task}/resume").status_code == 403
    assert client.post(f"/tasks/{task}/resume", data={"csrf": "guess", "confirm": "yes"}).status_code == 403
    csrf = csrf_of(client.get(f"/tasks/{task}").text)
    cross = client.post(f"/tasks/{task}/resume", data={"csrf": csrf, "confirm": "yes"},
                        headers={"origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.post("/new", data={"prompt": "x", "confirm": "yes"}).status_code == 403
    # A confirm page, not an action, without confirm=yes; unknown actions are 404.
    confirm = client.post(f"/tasks/{task}/cancel", data={"csrf": csrf})
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.text
    assert get_task(task).status == "failed"
    assert client.post(f"/tasks/{task}/delete", data={"csrf": csrf, "confirm": "yes"}).status_code == 404
    assert client.post(f"/tasks/{task}/fork", data={"csrf": csrf, "step": "77", "confirm": "yes"}).status_code == 404


# --- actions and live steps ----------------------------------------------------------


def wait_for(predicate, timeout=120.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def status_of(task_id):
    try:
        return get_task(task_id).status
    except LookupError:
        return None


def test_start_watch_live_cancel_resume_and_fork(made, tmp_path):
    release = threading.Event()
    asked = []

    def script(messages, info):
        turn = sum(1 for m in messages if m.kind == "response")
        asked.append(turn)
        if turn == 1:
            release.wait(120)  # hold step 2 until the test has watched step 1 arrive
        return [tool_call("execute_python", code="print('step one ran')"),
                tool_call("execute_python", code="print('step two ran')"),
                "All done."][turn]

    agent = Agent("ui-live", model=ScriptedModel(script))
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "note.txt").write_text("from the host")
    app = create_app(agent=agent, mounts=[MountSpec.parse(f"{shared}:/shared")], output_dir=tmp_path / "out")
    with TestClient(app, base_url=LOOPBACK) as c:
        form = c.get("/new").text
        assert f"{shared} at /shared" in form
        csrf = csrf_of(form)
        # Only the allow-list can be mounted.
        assert c.post("/new", data={"csrf": csrf, "prompt": "x", "mount": "5", "confirm": "yes"}).status_code == 400
        confirm = c.post("/new", data={"csrf": csrf, "prompt": "Print <two> things", "mount": "0"})
        assert confirm.status_code == 200 and "Print &lt;two&gt; things" in confirm.text
        started = c.post("/new", data={"csrf": csrf, "prompt": "Print <two> things", "mount": "0", "confirm": "yes"},
                         follow_redirects=False)
        assert started.status_code == 303
        task_id = started.headers["location"].rsplit("/", 1)[1]

        # Live: the page streams step 1 while step 2 waits on the model.
        wait_for(lambda: status_of(task_id) == "running" and len(checkpoints(task_id)) >= 3, what="step 1")
        page = c.get(f"/tasks/{task_id}").text
        assert "data-events=" in page and f'action="/tasks/{task_id}/cancel"' in page
        assert get_task(task_id).spec["mounts"][0]["guest"] == "/shared"
        with c.stream("GET", f"/tasks/{task_id}/events", params={"seen": 0, "status": ""}) as stream:
            lines = stream.iter_lines()
            got = []
            for line in lines:
                got.append(line)
                if line.startswith("data:") and "step one ran" in line:
                    break
        step = json.loads(next(line for line in got if "step one ran" in line).removeprefix("data: "))
        assert step["number"] == 1 and "print" in step["html"]

        # Cancel: it stops at its next step.
        csrf = csrf_of(page)
        assert "stops at its next step" in c.post(f"/tasks/{task_id}/cancel", data={"csrf": csrf}).text
        cancelled = c.post(f"/tasks/{task_id}/cancel", data={"csrf": csrf, "confirm": "yes"})
        assert cancelled.status_code == 200 and cancelled.url.path == f"/tasks/{task_id}"
        release.set()
        wait_for(lambda: status_of(task_id) == "cancelled", what="the task to be cancelled")
        page = c.get(f"/tasks/{task_id}").text
        assert "badge cancelled" in page and f'action="/tasks/{task_id}/resume"' in page
        assert "cancel" in page and "cancelled: the task stops at its next step" in page

        # Resume: it carries on under its own id to the end.
        resumed = c.post(f"/tasks/{task_id}/resume", data={"csrf": csrf, "confirm": "yes"})
        assert resumed.url.path == f"/tasks/{task_id}"
        wait_for(lambda: status_of(task_id) == "done", what="the resumed task to finish")
        page = wait_for(lambda: (p := c.get(f"/tasks/{task_id}").text) and "finished: done" in p and p,
                        what="the resume action to finish")
        assert "step two ran" in page and "All done." in page and "data-events=" not in page

        # Fork from step 2: a new task with step 1 copied runs step 2 again.
        asked.clear()
        forked = c.post(f"/tasks/{task_id}/fork", data={"csrf": csrf, "step": "2", "confirm": "yes"})
        fork_id = forked.url.path.rsplit("/", 1)[1]
        assert fork_id != task_id
        wait_for(lambda: status_of(fork_id) == "done", what="the fork to finish")
        assert 0 not in asked  # the first model call was copied, not asked again
        fork_page = c.get(f"/tasks/{fork_id}").text
        assert f'forked from <a href="/tasks/{task_id}">' in fork_page
        assert "step one ran" in fork_page and "step two ran" in fork_page


def test_a_running_cells_output_streams_live(made, tmp_path):
    hold = threading.Event()
    agent = Agent("ui-output", model=ScriptedModel([
        tool_call("execute_python", code="print('halfway <b>there</b>')\nopen('/data/hold').read()\nprint('finished')"),
        "ok",
    ]))

    @agent.fs.file("/data/hold")
    def held() -> str:
        hold.wait(60)  # the cell waits here, having printed its first line
        return "go"

    task_id = "ui-live-output"
    thread = threading.Thread(target=agent.run, args=("print slowly",),
                              kwargs={"task_id": task_id, "output_dir": tmp_path / "out"})
    thread.start()
    try:
        wait_for(lambda: status_of(task_id) == "running" and len(checkpoints(task_id)) >= 2, what="the cell")
        with TestClient(create_app(), base_url=LOOPBACK) as c:
            with c.stream("GET", f"/tasks/{task_id}/events", params={"seen": 0}) as stream:
                name = None
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name == "output":
                        printed = json.loads(line.removeprefix("data: "))
                        break
        assert printed["step"] == 1 and printed["stream"] == "stdout"
        assert printed["text"].startswith("halfway <b>there</b>")  # JSON text; the page sets it as textContent
        assert "finished" not in printed["text"]
    finally:
        hold.set()
        thread.join(120)
    assert status_of(task_id) == "done"


CRASH_APP = """
import os, time
from throwaway import Agent
from throwaway.testing import ScriptedModel, tool_call

def second(messages, info):
    if os.environ.get("UI_HANG"):
        open(os.environ["UI_READY"], "w").close()
        time.sleep(600)
    return "Resumed and done."

agent = Agent("ui-crash", model=ScriptedModel([tool_call("execute_python", code="print('before the crash')"), second]))
"""


def test_resume_an_interrupted_task(made, tmp_path):
    """A task whose process was killed shows as interrupted; Resume carries it on in the server's process."""
    import signal

    app = tmp_path / "ui_crash_app.py"
    app.write_text(CRASH_APP)
    ready = tmp_path / "ready"
    env = {**os.environ, "THROWAWAY_DATA": str(made["rt"].data_dir), "UI_HANG": "1", "UI_READY": str(ready)}
    child = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "run", "--app", f"{app}:agent", "--id",
                              "ui-crash-1", "-o", str(tmp_path / "out"), "crash in step 2"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for(lambda: ready.exists() or child.poll() is not None, timeout=240, what="the child to hang")
        assert ready.exists(), child.stdout.read()
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    assert status_of("ui-crash-1") == "interrupted"

    with TestClient(create_app(), base_url=LOOPBACK) as c:
        page = c.get("/tasks/ui-crash-1").text
        assert "badge interrupted" in page and "before the crash" in page
        c.post("/tasks/ui-crash-1/resume", data={"csrf": csrf_of(page), "confirm": "yes"})
        wait_for(lambda: status_of("ui-crash-1") == "done", what="the resumed task to finish")
        page = c.get("/tasks/ui-crash-1").text
        assert "Resumed and done." in page and "before the crash" in page


def test_resume_a_failed_task_forks_it(made):
    with TestClient(create_app(), base_url=LOOPBACK) as c:
        task = made["failed"]
        csrf = csrf_of(c.get(f"/tasks/{task}").text)
        confirm = c.post(f"/tasks/{task}/resume", data={"csrf": csrf})
        assert "carries on from the failed step as a new task" in confirm.text
        c.post(f"/tasks/{task}/resume", data={"csrf": csrf, "confirm": "yes"})
        page = wait_for(lambda: (p := c.get(f"/tasks/{task}").text) and "resume" in p and "running" not in
                        p.split('id="action-log"')[1].split("</ul>")[0] and p, what="the resume to end")
        # The script still has no turn 2, so the fork fails the same way; the page says so and links to it.
        log = page.split('id="action-log"')[1].split("</ul>")[0]
        assert "resume" in log and "failed" in log and "ScriptExhausted" in log
        fork_id = re.search(r'→ <a href="/tasks/([^"]+)">', log).group(1)
        assert fork_id != task and get_task(fork_id).forked_from == task
        assert "only step" in c.get(f"/tasks/{fork_id}").text  # step 1 copied from the failed task


def test_a_start_that_cannot_begin_says_why(made, tmp_path, monkeypatch):
    monkeypatch.delenv("THROWAWAY_MODEL", raising=False)
    with TestClient(create_app(output_dir=tmp_path / "out"), base_url=LOOPBACK) as c:
        csrf = csrf_of(c.get("/new").text)
        assert c.post("/new", data={"csrf": csrf, "prompt": "   ", "confirm": "yes"}).status_code == 400
        page = c.post("/new", data={"csrf": csrf, "prompt": "anything", "model": "nonsense-provider:x",
                                    "confirm": "yes"})
        text = wait_for(lambda: (p := c.get(page.url.path).text) and "failed" in p and p, what="the start to fail")
        assert "start" in text and "nonsense-provider" in text


# --- the command ------------------------------------------------------------------


def test_throwaway_ui_command_prints_its_url_and_needs_the_token_off_loopback(made, tmp_path):
    env = {**os.environ, "THROWAWAY_DATA": str(made["rt"].data_dir), "PYTHONUNBUFFERED": "1"}
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "throwaway.cli", "ui", "--host", "0.0.0.0", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        match = re.search(r"(http://\S+)\?token=(\S+)", first)
        assert match, first
        token = match.group(2)
        base = f"http://127.0.0.1:{port}/"
        wait_for(lambda: _status(base) is not None, timeout=60, what="the server to listen")
        assert _status(base) == 401
        assert _status(f"{base}tasks/{made['picture']}") == 401
        assert _status(f"{base}?token={token}") == 200  # redirected with the cookie
    finally:
        proc.terminate()
        proc.wait(30)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str) -> int | None:
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    try:
        return opener.open(url, timeout=5).status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def test_layers_hold_the_ui_under_the_command_line_and_over_durable():
    import tomllib

    config = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    layers = [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]
    where = {module: i for i, layer in enumerate(layers) for module in layer}
    assert where["throwaway.cli"] < where["throwaway.ui"] < where["throwaway.durable"]
