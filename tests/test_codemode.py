"""MCP code mode: real MCP servers (mcp-server-time from PyPI, and one written
here with the SDK, over stdio and streamable HTTP) and host functions, called
from guest code as `servers.<name>` in a real sandbox."""

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from throwaway import Sandbox
from throwaway.mcp import MCPServer, Toolbox, Toolset

DEMO = str(Path(__file__).parent / "mcp_servers" / "demo_server.py")
TIME = MCPServer.stdio("time", [sys.executable, "-m", "mcp_server_time"])


def find_customer(name: str, limit: int = 3) -> dict:
    """Find customers whose name starts with `name`.

    At most `limit` of them."""
    return {"customers": [f"{name} {i}" for i in range(limit)]}


async def add_note(customer: str, note: str) -> str:
    """Add a note to a customer's record."""
    if not note:
        raise ValueError("a note cannot be empty")
    return f"noted for {customer}"


@pytest.fixture(scope="module")
def sb():
    box = Toolbox([TIME, MCPServer.stdio("demo", [sys.executable, DEMO]),
                   Toolset("crm", [find_customer, add_note], description="Our customers.")])
    with Sandbox(extensions=[box], timeout=60) as sandbox:
        yield sandbox


def run(sb, code, **kw):
    r = sb.exec(textwrap.dedent(code), **kw)
    assert r.error is None, r.error
    return r


def test_a_server_from_pypi_is_a_package(sb):
    r = run(sb, """
        from servers.time import get_current_time, convert_time
        now = get_current_time("Europe/Paris")
        now["timezone"], sorted(now)
    """)
    assert r.json == ["Europe/Paris", ["datetime", "day_of_week", "is_dst", "timezone"]]
    r = run(sb, "convert_time('Europe/London', '12:00', 'Asia/Tokyo')['target']['timezone']")
    assert r.json == "Asia/Tokyo"


def test_the_tools_are_files_to_read(sb):
    r = run(sb, """
        import os
        print(sorted(os.listdir("/servers")))
        print(sorted(os.listdir("/servers/time")))
        print(open("/servers/time/README.md").read())
        print(open("/servers/time/convert_time.py").read())
    """)
    out = r.stdout
    assert "['README.md', '__init__.py', 'crm', 'demo', 'time']" in out
    assert "['README.md', '__init__.py', 'convert_time.py', 'get_current_time.py']" in out
    assert "- get_current_time(timezone): Get current time in a specific timezone" in out
    assert "def convert_time(source_timezone: str, time: str, target_timezone: str) -> dict:" in out


def test_help_shows_arguments_types_defaults_and_description(sb):
    r = run(sb, "from servers.demo import add\nhelp(add)")
    assert "add(a: int, b: int = 10) -> int" in r.stdout
    assert "Add two integers." in r.stdout


def test_structured_results_are_python_data(sb):
    r = run(sb, "from servers.demo import add, stats\n[add(2), add(2, b=3), stats([1, 2, 3])]")
    assert r.json == [12, 5, {"mean": 2.0, "max": 3.0}]


def test_an_error_result_raises_tool_error_with_the_servers_message(sb):
    r = run(sb, """
        import servers
        from servers.demo import fail
        try:
            fail("the disk is on fire")
        except servers.ToolError as e:
            caught = str(e)
        caught
    """)
    assert "the disk is on fire" in r.json


def test_image_content_is_bytes_with_a_mime_type(sb):
    r = run(sb, """
        from servers.demo import red_square
        img = red_square(3)
        img.save("/output/square.png")
        [isinstance(img, bytes), img.mime_type, img[:8] == b"\\x89PNG\\r\\n\\x1a\\n"]
    """)
    assert r.json == [True, "image/png", True]
    assert sb.read_file("/output/square.png").startswith(b"\x89PNG")


def test_text_content_and_names_that_are_not_identifiers(sb):
    r = run(sb, "from servers.demo import echo, class_\n[echo('hi'), class_(from_='y')]")
    assert r.json == ["hi", "class y"]


def test_resources_are_files(sb):
    r = run(sb, "import os\n[os.listdir('/servers/demo/resources'), open('/servers/demo/resources/greeting').read()]")
    assert r.json == [["greeting"], "hello from a resource"]


def test_host_functions_join_the_same_way(sb):
    r = run(sb, """
        from servers.crm import find_customer, add_note
        import servers
        help(find_customer)
        try:
            add_note("ann", "")
        except servers.ToolError as e:
            err = str(e)
        [find_customer("ann", limit=2), add_note("ann", "called"), err]
    """)
    assert "find_customer(name: str, limit: int = 3) -> dict" in r.stdout
    assert "Find customers whose name starts with `name`." in r.stdout
    found, noted, err = r.json
    assert found == {"customers": ["ann 0", "ann 1"]}
    assert noted == "noted for ann"
    assert "a note cannot be empty" in err


def test_bad_arguments_are_the_tools_error(sb):
    r = sb.exec("from servers.demo import add\nadd('not a number')")
    assert r.error is not None and r.error.type == "ToolError"
    assert "valid integer" in r.error.message


@pytest.mark.slow
def test_a_slow_tool_stops_at_the_cells_deadline_and_the_session_goes_on(sb):
    started = time.monotonic()
    r = sb.exec("from servers.demo import slow\nslow(60)", timeout=3)
    assert time.monotonic() - started < 30
    assert r.error is not None and (r.limit == "timeout" or r.error.type == "TimeoutError"), r.error
    assert run(sb, "from servers.demo import add\nadd(1, 2)").json == 3


def test_calls_are_recorded(sb):
    run(sb, "from servers.demo import add\nadd(40, 2)")
    records = sb._attached[0].records
    last = records[-1]
    assert (last["server"], last["tool"], last["arguments"]) == ("demo", "add", {"a": 40, "b": 2})
    assert last["result_bytes"] > 0 and last["seconds"] >= 0 and "error" not in last


def test_policy_allow_deny_and_approve():
    asked = []

    def approve(server, tool, arguments):
        asked.append((server, tool, arguments))
        return arguments.get("a") != 13

    demo = MCPServer.stdio("demo", [sys.executable, DEMO], deny=["fail", "sl*"], approve=approve)
    with Sandbox(extensions=[Toolbox([demo])], timeout=60) as sb:
        r = run(sb, "import os\nsorted(os.listdir('/servers/demo'))")
        assert "fail.py" not in r.json and "slow.py" not in r.json and "add.py" in r.json
        r = sb.exec("import servers\nservers._call('demo', 'fail', {'message': 'x'})")
        assert r.error.type == "PermissionError" and "not offered" in r.error.message
        assert run(sb, "from servers.demo import add\nadd(1)").json == 11
        r = sb.exec("add(13)")
        assert r.error.type == "PermissionError" and "refused" in r.error.message
    assert asked == [("demo", "add", {"a": 1, "b": 10}), ("demo", "add", {"a": 13, "b": 10})]


def test_a_server_that_cannot_start_says_why_on_import():
    broken = MCPServer.stdio("broken", ["/nonexistent/mcp-server"])
    with Sandbox(extensions=[Toolbox([broken])], timeout=60) as sb:
        r = sb.exec("import servers.broken")
        assert r.error.type == "ImportError"
        assert "could not open the MCP server 'broken' (/nonexistent/mcp-server)" in r.error.message


def test_one_session_per_sandbox_closed_with_it():
    box = Toolbox([MCPServer.stdio("demo", [sys.executable, DEMO])])
    with Sandbox(extensions=[box], timeout=60) as a, Sandbox(extensions=[box], timeout=60) as b:
        pid_a = run(a, "from servers.demo import pid\n[pid(), pid()]").json
        pid_b = run(b, "from servers.demo import pid\npid()").json
        assert pid_a[0] == pid_a[1] != pid_b
    for pid in (pid_a[0], pid_b):
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        assert not _alive(pid), f"the server process {pid} outlived its sandbox"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture
def http_demo():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, DEMO, "--http", str(port)])
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        proc.wait()


def test_a_server_over_streamable_http_with_headers(http_demo):
    good = MCPServer.http("web", http_demo, headers={"X-Demo-Key": "sesame"})
    bad = MCPServer.http("nokey", http_demo)
    with Sandbox(extensions=[Toolbox([good, bad])], timeout=60) as sb:
        r = run(sb, "from servers.web import add, red_square\n[add(1, 2), red_square().mime_type]")
        assert r.json == [3, "image/png"]
        r = sb.exec("import servers.nokey")
        assert r.error.type == "ImportError" and "could not open the MCP server 'nokey'" in r.error.message


def test_the_prompt_lists_servers_with_tool_names_only():
    box = Toolbox([TIME, Toolset("crm", [find_customer, add_note], description="Our customers.")])
    lines = dict(box.prompt_lines())
    assert lines["servers.crm"].startswith("Our customers. Tools: find_customer, add_note")
    assert "get_current_time, convert_time" in lines["servers.time"]
    assert "IANA" not in lines["servers.time"]  # no schemas, no argument descriptions


def test_spec_parsing():
    s = MCPServer.parse("time=python -m mcp_server_time")
    assert (s.name, s.command) == ("time", ("python", "-m", "mcp_server_time"))
    assert MCPServer.parse("docs=http://127.0.0.1:8000/mcp").url == "http://127.0.0.1:8000/mcp"
    for bad in ("time", "=python", "Time=python", "class=python", "_call=python", "x="):
        with pytest.raises(ValueError):
            MCPServer.parse(bad)


# --- the agent ------------------------------------------------------------------

AGENT_APP = '''
import os, sys, time
from throwaway import Agent
from throwaway.mcp import Toolset
from throwaway.testing import ScriptedModel, tool_call

def maybe_hang():
    if os.environ.get("CRASH_HANG"):
        open(os.environ["CRASH_READY"], "w").close()
        time.sleep(600)
    return "ok"

def shout(text: str) -> str:
    """The text in capitals."""
    return text.upper()

STEP_1 = "from servers.demo import add\\nopen('/output/sum.txt', 'w').write(str(add(2, 3)))"
STEP_2 = ("from servers.demo import add\\nfrom servers.words import shout\\n"
          "open('/output/both.txt', 'w').write(shout('sum') + ' ' + str(add(40, 2)))\\n"
          "open('/hang/now').read()")
agent = Agent("codemode-test", mcp=[Toolset("words", [shout])],
              model=ScriptedModel([tool_call("execute_python", code=STEP_1), tool_call("execute_python", code=STEP_2),
                                   "The sums are in /output."]))
agent.fs.file("/hang/now")(maybe_hang)
'''


def throwaway(*args, env, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "throwaway.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_an_agent_task_calls_mcp_tools_and_resumes_after_a_kill(tmp_path):
    import signal

    app = tmp_path / "codemode_app.py"
    app.write_text(AGENT_APP)
    ready, out = tmp_path / "ready", tmp_path / "output"
    env = {**os.environ, "THROWAWAY_DATA": str(tmp_path / "data"), "CRASH_READY": str(ready), "PYTHONUNBUFFERED": "1"}
    demo = f"demo={sys.executable} {DEMO}"
    first = throwaway("run", "--app", f"{app}:agent", "--id", "mcp-1", "-o", str(out), "--mcp", demo, "add things",
                      env={**env, "CRASH_HANG": "1"}, start_new_session=True)
    deadline = time.monotonic() + 240
    while not ready.exists():
        if first.poll() is not None:
            pytest.fail(f"the task ended before it hung:\n{first.stdout.read()}")
        assert time.monotonic() < deadline, "the task never reached the step where it hangs"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()

    resumed = throwaway("resume", "mcp-1", env=env)
    printed, _ = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, printed
    assert (out / "sum.txt").read_text() == "5"
    assert (out / "both.txt").read_text() == "SUM 42"
    step_2 = printed[printed.index("Step 2:"):printed.index("Step 3:")]
    assert "mcp    | words.shout(text=\"sum\") -> " in step_2
    assert "mcp    | demo.add(a=40, b=2) -> " in step_2

    shown = throwaway("show", "mcp-1", env=env)
    listing, _ = shown.communicate(timeout=120)
    assert shown.returncode == 0, listing
    step_1 = listing[listing.index("Step 1:"):listing.index("Step 2:")]
    assert "mcp    | demo.add(a=2, b=3) -> " in step_1


def test_the_agents_prompt_names_the_servers_and_their_tools(tmp_path):
    from throwaway.durable import Agent
    from throwaway.testing import ScriptedModel

    agent = Agent("codemode-prompt", model=ScriptedModel(["hello"]),
                  mcp=[Toolset("crm", [find_customer, add_note], description="Our customers.")])
    spec = agent.task_spec("hi", mcp=[f"demo={sys.executable} {DEMO}"], output_dir=tmp_path)
    assert spec["mcp"] == [f"demo={sys.executable} {DEMO}"]
    prompt = agent.task("t1", spec).system_prompt()
    assert "- servers.crm: Our customers. Tools: find_customer, add_note (see /servers/crm/README.md)" in prompt
    assert "- servers.demo: A demo server for throwaway's tests. Tools: add, stats, fail, red_square" in prompt
    assert "/servers (resource, read-only)" in prompt
    with pytest.raises(ValueError, match="NAME=COMMAND"):
        agent.task_spec("hi", mcp=["nonsense"])


# --- servers no one here wrote: mcp-server-git (PyPI) and server-everything (npm) -------------

def test_mcp_server_git_from_pypi(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("hello\n")
    git = MCPServer.stdio("git", [sys.executable, "-m", "mcp_server_git"], deny=["git_commit", "git_reset"])
    with Sandbox(extensions=[Toolbox([git])], timeout=60) as sb:
        r = run(sb, f"""
            import os
            from servers.git import git_status, git_add
            names = sorted(os.listdir('/servers/git'))
            git_add({str(repo)!r}, ["a.txt"])
            [names, git_status({str(repo)!r})]
        """)
    names, status = r.json
    assert "git_status.py" in names and "git_commit.py" not in names
    assert "On branch main" in status and "new file:   a.txt" in status


EVERYTHING = Path.home() / ".cache" / "throwaway-tests" / "server-everything"


@pytest.fixture(scope="module")
def everything():
    """@modelcontextprotocol/server-everything from npm, run with Node."""
    import shutil

    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Node and npm are needed for @modelcontextprotocol/server-everything")
    entry = EVERYTHING / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    if not entry.exists():
        EVERYTHING.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(EVERYTHING),
                        "@modelcontextprotocol/server-everything@2026.8.31"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    return MCPServer.stdio("everything", ["node", str(entry), "stdio"])


@pytest.mark.slow
def test_server_everything_from_npm(everything):
    with Sandbox(extensions=[Toolbox([everything])], timeout=60) as sb:
        r = run(sb, """
            import os, servers
            from servers.everything import echo, get_sum, get_tiny_image, get_structured_content
            text, image, words = get_tiny_image()
            docs = sorted(os.listdir('/servers/everything/resources'))
            [echo("hi"), get_sum(1, 2), type(image).__name__, image.mime_type, image[:4] == b"\\x89PNG",
             sorted(get_structured_content("New York")), docs[0], len(open('/servers/everything/resources/' + docs[0]).read()) > 0]
        """)
        echoed, summed, kind, mime, is_png, keys, first_doc, readable = r.json
        assert echoed == "Echo: hi" and "3" in summed
        assert (kind, mime, is_png) == ("Image", "image/png", True)
        assert "temperature" in keys
        assert first_doc.endswith(".md") and readable
        r = run(sb, "help(get_sum)")
        assert "get_sum(a: float, b: float)" in r.stdout


def test_a_server_that_dies_is_started_again_on_the_next_call():
    with Sandbox(extensions=[Toolbox([MCPServer.stdio("demo", [sys.executable, DEMO])])], timeout=60) as sb:
        first = run(sb, "from servers.demo import pid, crash\npid()").json
        r = sb.exec("crash()")
        assert r.error.type == "ConnectionError" and "closed the connection" in r.error.message
        second = run(sb, "pid()").json
        assert second != first
        assert run(sb, "from servers.demo import add\nadd(1, 1)").json == 2


def test_generated_source_is_python_whatever_the_schema_says():
    """Names that are keywords or not identifiers, quotes and backslashes in
    descriptions, nullable and nested types: the source compiles, and help()
    would show the server's own text."""
    import random
    from types import SimpleNamespace

    from throwaway.mcp.stubs import package_source, tool_infos, tool_source

    rng = random.Random(7)
    for _ in range(300):
        text = "".join(rng.choice(['"', "\\", "'", "a", " ", "\n", "x"]) for _ in range(rng.randint(0, 12))).strip()
        schema = {"type": "object", "required": ["from"], "properties": {
            "from": {"type": "string", "description": text}, "a-b": {"type": ["integer", "null"]},
            "a_b": {"anyOf": [{"$ref": "#/$defs/P"}, {"type": "null"}]}, "1x": {"enum": ["a", text]},
            "deep": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}, "default": [1]}},
            "$defs": {"P": {"type": "object"}}}
        (info,) = tool_infos([SimpleNamespace(name="do-it", description=text, input_schema=schema, output_schema=None)])
        function = next(c for c in compile(tool_source("s", info), "tool", "exec").co_consts
                        if hasattr(c, "co_name") and c.co_name == "do_it")
        lines = [line.strip() for line in (text or "do-it").splitlines()]
        assert [line.strip() for line in function.co_consts[0].splitlines()][:len(lines)] == lines, text
        module = compile(package_source("s", text, [info]), "package", "exec")
        assert [line.strip() for line in module.co_consts[0].splitlines()] == [
            line.strip() for line in (text or "s").splitlines()], text


def test_a_step_records_at_most_a_hundred_calls_and_counts_the_rest(tmp_path):
    from throwaway.agent.task import MAX_RECORDED_CALLS
    from throwaway.durable import Agent
    from throwaway.testing import ScriptedModel

    agent = Agent("codemode-many", model=ScriptedModel(["hello"]), mcp=[Toolset("crm", [find_customer])])
    task = agent.task("t2", agent.task_spec("hi", output_dir=tmp_path))
    with task.sandbox() as sb:
        run(sb, "from servers.crm import find_customer\nfor i in range(130):\n    find_customer('a', limit=1)")
    taken = task.take_mcp_calls()
    assert len(taken["mcp_calls"]) == MAX_RECORDED_CALLS and taken["mcp_calls_omitted"] == 30
    assert taken["mcp_calls"][0]["arguments"] == {"name": "a", "limit": 1}
    assert task.take_mcp_calls() == {}
