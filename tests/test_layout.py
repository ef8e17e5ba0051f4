"""The shape of the code: layers that point one way, modules that import alone, a light sandbox."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import throwaway

HEAVY = ("dbos", "pydantic_ai", "sqlalchemy")


def _python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_imports_point_down_the_layers():
    """import-linter's contract in pyproject.toml: a module imports only from layers below its own."""
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint), "--no-cache"], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parents[1])
    assert out.returncode == 0, out.stdout + out.stderr
    assert "1 kept, 0 broken" in out.stdout


def test_every_module_imports_alone():
    """Each module imports first, on its own, in a clean import state: no cycle bites on any order."""
    names = [m.name for m in pkgutil.walk_packages(throwaway.__path__, "throwaway.")]
    names = [n for n in names if not n.endswith("__main__")]
    assert len(names) > 40 and "throwaway.agent.loop" in names
    code = f"""
import importlib, json, sys
failed = {{}}
for name in {names!r}:
    for loaded in [m for m in sys.modules if m == "throwaway" or m.startswith("throwaway.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as e:
        failed[name] = f"{{type(e).__name__}}: {{e}}"
print(json.dumps(failed))
"""
    assert json.loads(_python(code).splitlines()[-1]) == {}


def test_the_sandbox_loads_no_agent_or_database_libraries():
    code = "import sys, throwaway.sandbox, throwaway.fs, throwaway.store, throwaway.wire\n" \
           f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    assert _python(code).strip() == "[]"


def test_the_root_face_is_lazy_and_complete():
    code = f"import sys, throwaway\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    assert _python(code).strip() == "[]"
    for name in throwaway.__all__:
        assert getattr(throwaway, name).__name__ == name
    from throwaway.durable import Agent
    from throwaway.sandbox import Sandbox

    assert throwaway.Agent is Agent and throwaway.Sandbox is Sandbox


def test_guest_code_is_not_a_host_module():
    """The guest half runs in Pyodide only; it is not importable (nor imported) on the host."""
    names = {m.name for m in pkgutil.walk_packages(throwaway.__path__, "throwaway.")}
    assert not any("guest" in n for n in names)
    assert (Path(throwaway.__file__).parent / "sandbox" / "guest" / "_throwaway.py").is_file()
