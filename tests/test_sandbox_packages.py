"""Packages in the guest, through the host's gateway: Pyodide packages from a
mirror folder (loaded from a cell's imports), PyPI wheels through install()
and micropip, allow/deny lists, and clear failures."""

import json
import shutil

import pytest

from throwaway.sandbox import Sandbox
from throwaway.sandbox.packages import PackageGateway
from throwaway.sandbox.runtime import ensure_runtime

from .wheels import GUEST_TAG, build_mirror

BODY = "def hello():\n    return 'hello from ' + NAME\n"


@pytest.fixture
def gateway(tmp_path):
    # One pure wheel and one tagged for the guest's platform (loaded by
    # Pyodide's own loader), the second depending on the first.
    mirror = tmp_path / "mirror"
    build_mirror(mirror, [("mirrorpure", "1.0", ["mirrorpure"], [])], body=BODY)
    build_mirror(mirror / "bin", [("mirrorbin", "2.0", ["mirrorbin"], ["mirrorpure"])], tag=GUEST_TAG, body=BODY)
    _merge_locks(mirror)
    runtime = ensure_runtime()
    return lambda **kw: PackageGateway(cache_dir=tmp_path / "cache", lock=runtime.lock_path, base_url=mirror, **kw)


def _merge_locks(mirror):
    top = json.loads((mirror / "pyodide-lock.json").read_text())
    sub = json.loads((mirror / "bin" / "pyodide-lock.json").read_text())
    top["packages"].update(sub["packages"])
    for wheel in (mirror / "bin").glob("*.whl"):
        shutil.move(wheel, mirror / wheel.name)
    (mirror / "pyodide-lock.json").write_text(json.dumps(top))


def test_imports_load_mirror_packages_with_dependencies(gateway):
    with Sandbox(packages=gateway()) as sb:
        r = sb.exec("import mirrorbin\nmirrorbin.hello()")
        assert r.ok, r.error
        assert r.json == "hello from mirrorbin"
        assert "mirrorbin" in r.stderr  # progress while loading
        assert sb.exec("import mirrorpure; mirrorpure.hello()").json == "hello from mirrorpure"


def test_warm_cache_works_without_the_mirror(gateway, tmp_path):
    with Sandbox(packages=gateway()) as sb:
        assert sb.exec("import mirrorbin").ok
    # The mirror is gone and the network is off: the cache alone serves.
    lock = json.loads(ensure_runtime().lock_path.read_text())
    lock["packages"].update(json.loads((tmp_path / "mirror" / "pyodide-lock.json").read_text())["packages"])
    (tmp_path / "lock.json").write_text(json.dumps(lock))
    shutil.rmtree(tmp_path / "mirror")
    offline = PackageGateway(cache_dir=tmp_path / "cache", lock=tmp_path / "lock.json",
                             base_url="http://127.0.0.1:9/", offline=True)
    with Sandbox(packages=offline) as sb:
        r = sb.exec("import mirrorbin\nmirrorbin.hello()")
        assert r.json == "hello from mirrorbin", r.error


def test_denied_package_fails_fast_and_says_so(gateway):
    with Sandbox(packages=gateway(deny=["mirrorpure"])) as sb:
        r = sb.exec("import mirrorbin")
        assert r.error.type == "ImportError"
        assert "deny" in r.error.message and "mirrorpure" in r.error.message


def test_unreachable_package_fails_with_what_to_do(tmp_path):
    runtime = ensure_runtime()
    gw = PackageGateway(cache_dir=tmp_path / "cache", lock=runtime.lock_path, base_url="http://127.0.0.1:9/")
    with Sandbox(packages=gw) as sb:
        r = sb.exec("import numpy")
        assert r.error.type == "ImportError"
        assert "numpy" in r.error.message and "mirror" in r.error.message
        assert sb.exec("1 + 1").json == 2  # the session is fine


def test_install_from_pypi_and_micropip(tmp_path):
    runtime = ensure_runtime()
    gw = PackageGateway(cache_dir=tmp_path / "cache", lock=runtime.lock_path)
    with Sandbox(packages=gw) as sb:
        r = sb.exec("from throwaway import install\ninstall('pypng')\nimport png\npng.__name__")
        assert r.json == "png", r.error
        r = sb.exec("import micropip\nawait micropip.install('pypng')\n'pypng' in micropip.list()")
        assert r.json is True, r.error
        r = sb.exec("install('surely-not-a-real-package-name-xyz')")
        assert r.error.type == "ImportError"
