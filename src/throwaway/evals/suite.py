"""The built-in evaluation tasks: each sets up what the task works on and checks the outcome by a function.

Every task gets a fresh `Agent` (its own file system) and a scratch folder
on the host for the data it mounts; its check reads the task's answer and
the files it left in the output folder, never a person's judgement.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from throwaway.agent.task import TaskResult
from throwaway.durable.agent import Agent

IP = "203.0.113.7"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SALES = [("north", 120), ("south", 340), ("west", 410), ("east", 95), ("south", 80), ("west", 15), ("north", 60)]
USERS = [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}, {"id": 3, "name": "Linus"}]
ORDERS = [{"user_id": u, "total": t} for u, t in [(1, 30), (2, 45), (3, 10), (2, 5), (1, 12), (2, 60), (3, 70)]]
BIG_LINES = 120_000  # about 4 MB of log: too big to print, fine to scan
SKILL = """---
name: status-report
description: Write a status report as Markdown in /output/report.md
---
# Status report

1. Write /output/report.md.
2. Its first line is exactly `# Status report`.
3. Then one line per item, as `- ITEM: STATUS`.
4. Its last line is exactly `-- end of report`.
"""


@dataclass
class Check:
    """A check's verdict: whether the task succeeded, and why not."""

    ok: bool
    why: str = ""


@dataclass
class EvalTask:
    """One evaluation task: its prompt, how to set up its agent, and how to check its outcome.

    `setup(agent, scratch)` adds resources to the agent's file system and
    returns the run's extra options (mounts, docs, skills); `check(result)`
    judges the outcome.
    """

    name: str
    prompt: str
    setup: Callable[[Agent, Path], dict]
    check: Callable[[TaskResult], Check]


def _pngs(result: TaskResult) -> list[Path]:
    return [p for p in result.artifacts if p.is_file() and p.read_bytes()[:8] == PNG_SIGNATURE]


def _mentions(text: str, *words: str) -> bool:
    return all(re.search(rf"\b{re.escape(w)}\b", text, re.IGNORECASE) for w in words)


def _both(*checks: tuple[bool, str]) -> Check:
    failed = [why for ok, why in checks if not ok]
    return Check(not failed, "; ".join(failed))


# --- the tasks ------------------------------------------------------------------------


def _ip_setup(agent: Agent, scratch: Path) -> dict:
    @agent.fs.file("/network/current-ip", description="this machine's public IP address")
    def current_ip() -> str:
        return IP + "\n"

    return {}


def _ip_check(r: TaskResult) -> Check:
    return _both((bool(_pngs(r)), "no PNG in /output"), (IP in r.answer, f"the answer does not name {IP}"))


def _csv_setup(agent: Agent, scratch: Path) -> dict:
    folder = scratch / "data"
    folder.mkdir()
    rows = "".join(f"{region},{amount}\n" for region, amount in SALES)
    (folder / "sales.csv").write_text("region,amount\n" + rows)
    return {"mounts": [f"{folder}:/data"]}


def _csv_check(r: TaskResult) -> Check:
    return _both((_mentions(r.answer, "west"), "the answer does not say west (425)"),
                 (bool(_pngs(r)), "no bar chart (PNG) in /output"))


def _zip_setup(agent: Agent, scratch: Path) -> dict:
    folder = scratch / "inbox"
    folder.mkdir()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes/readme.txt", "Welcome. The password is tangerine.\n")
        archive.writestr("notes/todo.txt", "buy milk\n")
        archive.writestr("data/a.csv", "x\n1\n")
        archive.writestr("data/b.csv", "x\n2\n")
        archive.writestr("images/empty.bin", b"\x00" * 10)
    (folder / "bundle.zip").write_bytes(buffer.getvalue())
    return {"mounts": [f"{folder}:/inbox"]}


def _zip_check(r: TaskResult) -> Check:
    return _both((_mentions(r.answer, "5"), "the answer does not say 5 files"),
                 (_mentions(r.answer, "tangerine"), "the answer does not give the password"))


def _api_setup(agent: Agent, scratch: Path) -> dict:
    @agent.fs.file("/api/users.json", description="the users, as JSON: [{id, name}]")
    def users() -> str:
        return json.dumps(USERS)

    @agent.fs.file("/api/orders.json", description="the orders, as JSON: [{user_id, total}]")
    def orders() -> str:
        return json.dumps(ORDERS)

    return {}


def _api_check(r: TaskResult) -> Check:
    # Grace: 45 + 5 + 60 = 110; Linus 80; Ada 42.
    return _both((_mentions(r.answer, "Grace"), "the answer does not name Grace"),
                 (_mentions(r.answer, "110"), "the answer does not give her total, 110"))


def _skill_setup(agent: Agent, scratch: Path) -> dict:
    skill = scratch / "skills" / "status-report"
    skill.mkdir(parents=True)
    (skill / "SKILL.md").write_text(SKILL)
    return {"skills": str(scratch / "skills")}


def _skill_check(r: TaskResult) -> Check:
    report = next((p for p in r.artifacts if p.name == "report.md"), None)
    if report is None:
        return Check(False, "no /output/report.md")
    lines = report.read_text().strip().splitlines()
    return _both((lines[:1] == ["# Status report"], "the first line is not '# Status report'"),
                 (lines[-1:] == ["-- end of report"], "the last line is not '-- end of report'"),
                 (any(re.match(r"- .*database.*:\s*\S", ln, re.IGNORECASE) for ln in lines),
                  "no '- database: ...' line"))


def _big_setup(agent: Agent, scratch: Path) -> dict:
    folder = scratch / "logs"
    folder.mkdir()
    with (folder / "server.log").open("w") as f:
        for i in range(BIG_LINES):
            level = "ERROR" if i % 97 == 0 else "INFO"
            f.write(f"2026-11-26T10:{i % 60:02d}:00 {level} request {i} handled in {i % 13} ms\n")
    return {"mounts": [f"{folder}:/logs"]}


def _big_check(r: TaskResult) -> Check:
    errors = len(range(0, BIG_LINES, 97))
    return Check(_mentions(r.answer, str(errors)) or _mentions(r.answer, f"{errors:,}"),
                 f"the answer does not give {errors}")


def _retry_setup(agent: Agent, scratch: Path) -> dict:
    folder = scratch / "readings"
    folder.mkdir()
    (folder / "values.csv").write_text("sensor,value\na,12\nb,30\nc,n/a\nd,8\ne,\nf,50\n")
    return {"mounts": [f"{folder}:/readings"]}


def _retry_check(r: TaskResult) -> Check:
    return Check(_mentions(r.answer, "100"), "the answer does not give 100")


def _no_code_setup(agent: Agent, scratch: Path) -> dict:
    return {}


def _no_code_check(r: TaskResult) -> Check:
    return Check(_mentions(r.answer, "Paris"), "the answer does not say Paris")


TASKS = [
    EvalTask("ip-picture", "Figure out the current ip address and make me a picture of it.", _ip_setup, _ip_check),
    EvalTask("csv-chart", "Which region in /data/sales.csv has the highest total amount? Also save a bar chart "
             "of the totals per region to /output as a PNG.", _csv_setup, _csv_check),
    EvalTask("zip-inspect", "Unpack /inbox/bundle.zip. How many files does it hold, and what password does its "
             "readme give?", _zip_setup, _zip_check),
    EvalTask("json-api", "The folder /api serves our shop's data as JSON. Which user has spent the most in "
             "total, and how much?", _api_setup, _api_check),
    EvalTask("skill", "Write a status report with one item: database, status green.", _skill_setup, _skill_check),
    EvalTask("big-file", "How many lines of /logs/server.log are at level ERROR?", _big_setup, _big_check),
    EvalTask("retry", "What is the sum of the value column in /readings/values.csv? Skip values that are "
             "missing or not numbers.", _retry_setup, _retry_check),
    EvalTask("no-code", "What is the capital of France? Answer in one word.", _no_code_setup, _no_code_check),
]
