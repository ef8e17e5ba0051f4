"""The README runs as written: every Python block and every shell block of it.

Python blocks run with pytest-examples, in order, each in the globals the
blocks before it left (they build on one another), in a folder of their own.
A line whose comment is a Python literal (``r.stdout   # 'hello\\n'``, or an
expression followed by a comment line holding one) is a claim, and is checked.
Shell blocks run with bash. The first one, the main job, runs on a fresh copy
of this working tree, so ``python3 -m venv .venv && .venv/bin/pip install -e .``
really installs it; the second, the test command, is the one `.ci/run` runs
(the test suite does not run itself). The model is a scripted
OpenAI-compatible server on loopback (`model_server.ModelServer`), given to
the README's commands through the environment only.
"""

from __future__ import annotations

import ast
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import tokenize
import zlib
from pathlib import Path
from typing import Any

import pytest
from pytest_examples import CodeExample, EvalExample, find_examples

from .model_server import ANSWER, IP, ModelServer

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PYTHON_BLOCKS = list(find_examples(str(README)))
SHELL_BLOCKS = [m.group(1) for m in re.finditer(r"^```(?:sh|bash|shell)\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)]
CANARY_KEY = "sk-canary-must-not-leave-this-process"


# --- the Python blocks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """One working folder for all the README's blocks, and the scripted model as THROWAWAY_MODEL."""
    path = tmp_path_factory.mktemp("readme")
    os.symlink(sys.prefix, path / ".venv")  # `.venv/bin/throwaway` as after the README's setup
    saved = {k: os.environ.get(k) for k in ("THROWAWAY_MODEL", "THROWAWAY_DATA", "THROWAWAY_IP_SERVICE")}
    old_cwd = os.getcwd()
    with ModelServer() as server:
        os.environ["THROWAWAY_MODEL"] = server.model()
        os.environ["THROWAWAY_DATA"] = str(path / ".throwaway")
        os.environ["THROWAWAY_IP_SERVICE"] = f"http://127.0.0.1:{server.port}/ip"
        os.chdir(path)
        try:
            yield path, server
        finally:
            os.chdir(old_cwd)
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            _close_sandboxes()
            from throwaway.durable import backend

            backend.shutdown()


_after: dict[int, dict[str, Any]] = {}  # the globals after block i


def _globals_before(index: int, eval_example: EvalExample) -> dict[str, Any]:
    """What the blocks before `index` left, running them first if this test runs alone."""
    if index == 0:
        return {}
    if index - 1 not in _after:
        _run_block(index - 1, eval_example)
    return _after[index - 1]


def _run_block(index: int, eval_example: EvalExample) -> dict[str, Any]:
    start = dict(_globals_before(index, eval_example))
    found = eval_example.run(PYTHON_BLOCKS[index], module_globals=start)
    _after[index] = {k: v for k, v in found.items() if not k.startswith("__")}
    return _after[index]


def _close_sandboxes() -> None:
    from throwaway.sandbox import Sandbox

    for names in _after.values():
        for value in names.values():
            if isinstance(value, Sandbox):
                value.close()
    _after.clear()


@pytest.mark.slow
@pytest.mark.parametrize("example", PYTHON_BLOCKS, ids=lambda e: f"line{e.start_line}")
def test_python_block(example: CodeExample, eval_example: EvalExample, folder):
    index = PYTHON_BLOCKS.index(example)
    names = _run_block(index, eval_example)
    for line, expression, expected in claims(example.source):
        got = eval(expression, dict(names))
        assert got == expected, f"README line {example.start_line + line}: {expression} is {got!r}, not {expected!r}"


@pytest.mark.slow
def test_the_agent_block_ran_the_task_against_the_scripted_model(eval_example, folder):
    """The README's Agent example really ran a task, and got the scripted model's answer and picture."""
    index = next(i for i, e in enumerate(PYTHON_BLOCKS) if "agent.run(" in e.source)
    result = (_after.get(index) or _run_block(index, eval_example))["result"]
    assert result.answer == ANSWER
    assert [Path(p).name for p in result.artifacts] == ["ip.png"]
    assert png_size(Path(result.artifacts[0]).read_bytes()) == ((4 * len(IP) + 1) * 8, 56)


def claims(source: str) -> list[tuple[int, str, Any]]:
    """(line, expression, value) for each ``expression  # literal`` in `source` (or literal on the next line)."""
    lines = source.splitlines()
    comments = {t.start[0]: t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT}
    found = []
    for number, token in comments.items():
        code = lines[number - 1][: token.start[1]].strip()
        if not code and number - 1 in comments:
            continue  # a comment under a comment
        if not code and number > 1 and (number - 1) not in comments:
            code = lines[number - 2].strip()  # a comment line that says what the line above gives
        value = _literal(token.string.lstrip("#").strip())
        if code and value is not _NOT_A_LITERAL and _is_expression(code):
            found.append((number, code, value))
    return found


_NOT_A_LITERAL = object()


def _literal(comment: str) -> Any:
    for candidate in (comment, comment.split("  ")[0], comment.split(":")[0], comment.split(" ")[0]):
        try:
            return ast.literal_eval(candidate)
        except (ValueError, SyntaxError):
            continue
    return _NOT_A_LITERAL


def _is_expression(code: str) -> bool:
    try:
        ast.parse(code, mode="eval")
    except SyntaxError:
        return False
    return True


def test_claims_are_found():
    source = "r = f()\nr.stdout   # 'hello\\n'\nr.json  # 42    (as JSON)\nr.ok  # False: it failed\ng()\n# {'a': 1}\nx = 1  # 3\n"
    assert claims(source) == [(2, "r.stdout", "hello\n"), (3, "r.json", 42), (4, "r.ok", False), (6, "g()", {"a": 1})]


# --- the shell blocks -------------------------------------------------------------------------


def test_the_readme_starts_with_the_main_job_and_the_test_command():
    main_job, tests = SHELL_BLOCKS[0], SHELL_BLOCKS[1]
    assert main_job.startswith("python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/throwaway run ")
    assert tests.strip() == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/pytest"


def test_ci_runs_the_readme_test_command():
    """CI runs exactly the README's second command (the suite cannot usefully run itself from inside)."""
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert SHELL_BLOCKS[1].strip() in ci


@pytest.mark.slow
def test_main_job_runs_as_written_on_a_fresh_copy(tmp_path):
    """The README's first command, word for word, in a fresh copy: venv, install, and the task, end to end."""
    repo = tmp_path / "throwaway"
    _copy_working_tree(repo)
    with ModelServer() as server:
        env = _clean_env(THROWAWAY_MODEL=server.model(), THROWAWAY_IP_SERVICE=f"http://127.0.0.1:{server.port}/ip",
                         OPENAI_API_KEY=CANARY_KEY)
        done = subprocess.run(["bash", "-c", SHELL_BLOCKS[0]], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=900, check=False)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-5000:]
        calls = server.model_calls()
    for expected in ("Tool call: execute_python", f"stdout | Current IP Address: {IP}", "wrote  | /output/ip.png",
                     ANSWER, "Total steps: 2", "✓ ip.png"):
        assert expected in out, (expected, out[-3000:])
    assert "Traceback" not in out
    assert png_size((repo / "output" / "ip.png").read_bytes()) == ((4 * len(IP) + 1) * 8, 56)
    assert (repo / ".venv" / "bin" / "throwaway").exists()
    # Two model calls (the tool call, then the answer); OPENAI_API_KEY was never sent to this host.
    assert len(calls) == 2
    assert all(CANARY_KEY not in str(c["headers"]) for c in calls)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(2, len(SHELL_BLOCKS)), ids=lambda i: f"block{i}")
def test_shell_block(index, tmp_path):
    """Every other shell block, as written, with the package installed (on PATH as `throwaway` too)."""
    os.symlink(sys.prefix, tmp_path / ".venv")
    with ModelServer() as server:
        env = _clean_env(THROWAWAY_MODEL=server.model(), THROWAWAY_IP_SERVICE=f"http://127.0.0.1:{server.port}/ip",
                         PATH=f"{tmp_path / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
        done = subprocess.run(["bash", "-e", "-c", SHELL_BLOCKS[index]], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=600, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-5000:]
    assert "Traceback" not in out


# --- helpers ----------------------------------------------------------------------------------


def _copy_working_tree(dest: Path) -> None:
    """The files git would have in a clone of this working tree (committed or not), copied to `dest`."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without its venv, data folder or model settings, plus `extra`."""
    drop = ("VIRTUAL_ENV", "PYTHONPATH", "THROWAWAY_DATA", "THROWAWAY_DATABASE_URL", "THROWAWAY_MODEL",
            "OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "THROWAWAY_OPENAI_COMPATIBLE_API_KEY")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PYTEST")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(extra)
    return env


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG, after checking its signature and every chunk's CRC."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, size = 8, None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] == zlib.crc32(kind + body)
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        pos += 12 + length
    assert size is not None
    return size
