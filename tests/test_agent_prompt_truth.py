"""The system prompt says what the guest can really import, and guest-facing errors say what to do."""

from __future__ import annotations

import socket

import pytest
from pydantic_ai import models as pydantic_ai_models

from throwaway import Agent
from throwaway.agent.packages import probe
from throwaway.durable import backend
from throwaway.sandbox import Sandbox
from throwaway.sandbox.packages import PackageGateway
from throwaway.sandbox.runtime import ensure_runtime
from throwaway.testing import ScriptedModel, tool_call

from .wheels import build_mirror


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def unreachable(tmp_path):
    """A gateway whose CDN is a closed loopback port and whose PyPI is off: nothing can be had."""
    return PackageGateway(cache_dir=tmp_path / "cache", lock=ensure_runtime().lock_path,
                          base_url=f"http://127.0.0.1:{closed_port()}/", pypi=False)


def test_nothing_reachable_means_no_numpy_promised(unreachable):
    report = probe(unreachable, timeout=1)
    assert report.lock_source is None and report.cached == [] and not report.pypi
    assert "numpy" in report.lock_names  # the lock has it; it just cannot be had
    text = report.prompt()
    assert "cannot be had right now" in text and "Do not import them" in text
    assert "no network inside the sandbox" in text and "requests" in text and "open()" in text
    assert "zlib + struct" in text and "csv" in text
    assert "install(" not in text  # PyPI is off


def test_a_mirror_offers_its_packages(tmp_path):
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [("mirrorpure", "1.0", ["mirrorpure"], [])], body="X = 1\n")
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock=ensure_runtime().lock_path, base_url=mirror,
                             pypi=False)
    report = probe(gateway)
    assert report.lock_source == "mirror"
    assert "load on import from a local mirror: numpy, pandas, matplotlib, pillow" in report.prompt()


def test_the_cache_alone_offers_what_it_holds(tmp_path):
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [("mirrorpure", "1.0", ["mirrorpure"], [])], body="X = 1\n")
    lock = mirror / "pyodide-lock.json"
    PackageGateway(cache_dir=tmp_path / "cache", lock=lock, base_url=mirror).fetch_pyodide(["mirrorpure"])
    offline = PackageGateway(cache_dir=tmp_path / "cache", lock=lock, base_url=f"http://127.0.0.1:{closed_port()}/",
                             offline=True)
    report = probe(offline)
    assert report.cached == ["mirrorpure"] and report.lock_source is None
    assert "Only these packages can be imported besides the standard library (they are in the package cache): " \
           "mirrorpure." in report.prompt()


def test_a_guest_import_that_cannot_be_had_says_what_to_do(unreachable):
    with Sandbox(packages=unreachable) as sb:
        r = sb.exec("import numpy")
    assert r.error.type == "ImportError"
    assert r.error.message.startswith("numpy cannot be had in this sandbox. Code in the sandbox cannot fix this")
    assert "standard library" in r.error.message and "For the host's operator:" in r.error.message


def test_the_task_prompt_has_the_probe_and_describe_on_text_says_open(tmp_path, monkeypatch):
    monkeypatch.setattr(pydantic_ai_models, "ALLOW_MODEL_REQUESTS", False)
    seen = []

    def after_describe(messages, info):
        seen.append(messages[-1].parts[0].content)
        return "done"

    def first(messages, info):
        seen.append(messages[0].instructions)
        return tool_call("execute_python", code="open('/output/notes.txt', 'w').write('hello')")

    model = ScriptedModel([first, tool_call("describe", path="/output/notes.txt", question="what?"), after_describe])
    backend.launch(tmp_path / "data")
    try:
        Agent("prompt-truth", model=model).run("go", output_dir=tmp_path / "out")
    finally:
        backend.shutdown()
    prompt, described = seen
    assert "Packages: there is no network inside the sandbox" in prompt
    assert "e.g. numpy, Pillow, matplotlib" not in prompt
    assert "It cannot read text: read text files with open()" in prompt
    assert "describe looks at images" in described and "print(open('/output/notes.txt').read()[:2000])" in described
