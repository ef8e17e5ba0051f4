"""A model that cannot be reached, or answers with an error, through the real command line.

One clear line (which model and URL, what went wrong, how to carry on), exit
status 1, no traceback unless --debug; the task is kept as failed, and
`throwaway resume ID` finishes it once the model answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .model_server import ANSWER, ModelServer

THROWAWAY = str(Path(sys.prefix) / "bin" / "throwaway")
PROMPT = "Figure out the current ip address and make me a picture of it."


@pytest.fixture
def cli(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("THROWAWAY_MODEL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY")}
    env["THROWAWAY_DATA"] = str(tmp_path / "data")

    def invoke(*args: str, ip_port: int | None = None) -> subprocess.CompletedProcess[str]:
        extra = {"THROWAWAY_IP_SERVICE": f"http://127.0.0.1:{ip_port}/ip"} if ip_port else {}
        return subprocess.run([THROWAWAY, *args], cwd=tmp_path, env={**env, **extra}, capture_output=True,
                              text=True, timeout=300, check=False)

    return invoke


def run_task(cli, model: str, task_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return cli("run", "--app", "throwaway.demo:agent", "--model", model, "--id", task_id, *extra, PROMPT)


def error_lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("Error:")]


def status(cli, task_id: str) -> str:
    tasks = json.loads(cli("tasks", "--json").stdout)
    return next(t["status"] for t in tasks if t["task_id"] == task_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_unreachable_model_is_one_line_and_the_task_resumes(cli):
    port = free_port()  # nothing listens there
    model = f"openai-compatible:scripted@http://127.0.0.1:{port}/v1"
    done = run_task(cli, model, "closed-1")

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (line,) = error_lines(done)
    assert line.startswith(f"Error: the model openai-compatible:scripted at http://127.0.0.1:{port}/v1/ "
                           "could not be reached (")
    assert line.endswith("carry on with: throwaway resume closed-1")
    assert status(cli, "closed-1") == "failed"

    with ModelServer(port=port) as server:  # the model is back
        resumed = cli("resume", "closed-1", ip_port=port)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert ANSWER in resumed.stdout and len(server.model_calls()) == 2


@pytest.mark.slow
def test_server_error_is_one_line_and_the_task_resumes(cli):
    with ModelServer() as server:
        server.status = 500
        done = run_task(cli, server.model(), "http500-1")
        assert done.returncode == 1
        assert "Traceback" not in done.stdout + done.stderr
        (line,) = error_lines(done)
        assert f"the model openai-compatible:scripted at {server.url}/ answered HTTP 500" in line
        assert "the scripted server is set to fail" in line and "(3 attempts)" in line
        assert line.endswith("carry on with: throwaway resume http500-1")
        assert status(cli, "http500-1") == "failed"

        shown = cli("show", "http500-1")
        assert "Status: failed" in shown.stdout and "Carry on with: throwaway resume http500-1" in shown.stdout

        server.status = None
        resumed = cli("resume", "http500-1", ip_port=server.port)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert ANSWER in resumed.stdout


@pytest.mark.slow
def test_debug_gives_the_traceback(cli):
    with ModelServer() as server:
        server.status = 401  # not retried: one attempt
        plain_run = run_task(cli, server.model(), "auth-1")
        debug_run = run_task(cli, server.model(), "auth-2", "--debug")
    assert plain_run.returncode == 1 and "Traceback" not in plain_run.stderr
    (line,) = error_lines(plain_run)
    assert "answered HTTP 401" in line and "attempts" not in line
    assert debug_run.returncode == 1
    assert "Traceback (most recent call last)" in debug_run.stderr and "ModelFailed" in debug_run.stderr
