"""`throwaway exec` and `throwaway setup`, as a user runs them."""

import json
import subprocess
import sys

THROWAWAY = [sys.executable, "-m", "throwaway.cli"]


def run(*args, stdin=None):
    return subprocess.run([*THROWAWAY, *args], capture_output=True, text=True, input=stdin, timeout=300)


def test_exec_prints_output_then_value():
    p = run("exec", "print('hi'); 6 * 7")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "hi\n42\n"


def test_exec_error_goes_to_stderr_with_status_1():
    p = run("exec", "1/0")
    assert p.returncode == 1
    assert "ZeroDivisionError: division by zero" in p.stderr
    assert 'File "<cell 1>"' in p.stderr


def test_exec_json_and_stdin():
    p = run("exec", "--json", "-f", "-", stdin="import sys\nprint('x')\n{'a': 1}")
    result = json.loads(p.stdout)
    assert result["stdout"] == "x\n" and result["json"] == {"a": 1} and result["error"] is None


def test_exec_timeout_is_reported():
    p = run("exec", "--timeout", "0.5", "while True: pass")
    assert p.returncode == 1
    assert "deadline" in p.stderr


def test_exec_needs_code():
    p = run("exec")
    assert p.returncode == 2 and "give the code" in p.stderr


def test_setup_is_idempotent_and_reports_python():
    p = run("setup")
    assert p.returncode == 0, p.stderr
    assert "Python 3.14" in p.stdout


def test_exec_with_mounts_and_output(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "n.txt").write_text("21")
    code = "n = int(open('/data/n.txt').read())\nopen('/output/double.txt', 'w').write(str(2 * n))\nn * 2"
    p = run("exec", "--mount", f"{tmp_path / 'in'}:/data", "--output", str(tmp_path / "out"), code)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "42\n"
    assert (tmp_path / "out" / "double.txt").read_text() == "42"
    assert "wrote" in p.stderr
    bad = run("exec", "--mount", "nocolon", "1")
    assert bad.returncode == 2 and "HOST:GUEST" in bad.stderr
