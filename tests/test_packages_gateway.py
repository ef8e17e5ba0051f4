"""The package gateway, on real files and real pip (against the configured index).

The Pyodide CDN is not reachable from CI, so Pyodide packages come from a
mirror folder each test builds, holding small wheels made here.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from throwaway.sandbox.packages import PackageError, PackageGateway

from .wheels import GUEST_TAG, INFO, build_mirror, lock_entry, make_wheel, sha256_of

# An excerpt of Pyodide 314.0.7's pyodide-lock.json: name -> (version, depends, imports).
REAL_LOCK_EXCERPT = {
    "annotated-types": ("0.7.0", [], ["annotated_types"]),
    "contourpy": ("1.3.3", ["numpy"], ["contourpy"]),
    "cycler": ("0.12.1", ["six"], ["cycler"]),
    "fonttools": ("4.62.1", [], ["fontTools"]),
    "kiwisolver": ("1.5.0", [], ["kiwisolver"]),
    "matplotlib": (
        "3.10.8",
        ["contourpy", "cycler", "fonttools", "kiwisolver", "numpy", "packaging", "pillow",
         "pyparsing", "python-dateutil", "pytz"],
        ["pylab", "mpl_toolkits", "matplotlib"],
    ),
    "numpy": ("2.4.6", [], ["numpy"]),
    "packaging": ("26.1", [], ["packaging"]),
    "pillow": ("12.2.0", [], ["PIL"]),
    "pydantic": (
        "2.12.5", ["typing-extensions", "pydantic_core", "annotated-types", "typing-inspection"], ["pydantic"]
    ),
    "pydantic-core": ("2.41.5", ["typing-extensions"], ["pydantic_core"]),
    "pyparsing": ("3.3.2", [], ["pyparsing"]),
    "python-dateutil": ("2.9.0.post0", ["six"], ["dateutil"]),
    "pytz": ("2026.1.post1", [], ["pytz"]),
    "six": ("1.17.0", [], ["six"]),
    "typing-extensions": ("4.15.0", [], ["typing_extensions"]),
    "typing-inspection": ("0.4.2", [], ["typing_inspection"]),
}  # fmt: skip


def excerpt_lock() -> dict:
    packages = {
        name: lock_entry(
            name, version, f"{name.replace('-', '_')}-{version}-py3-none-any.whl", "0" * 64, imports, depends
        )
        for name, (version, depends, imports) in REAL_LOCK_EXCERPT.items()
    }
    return {"info": INFO, "packages": packages}


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A mirror folder: tinya (needs tinyb) and tinyb, with its own pyodide-lock.json."""
    return build_mirror(
        tmp_path / "mirror",
        [("tinya", "1.0", ["tinya"], ["TinyB"]), ("tinyb", "2.0", ["tinyb", "tinyb_extra"], [])],
    )


def mirror_lock(mirror: Path) -> dict:
    return json.loads((mirror / "pyodide-lock.json").read_text())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the lock ------------------------------------------------------------------


def test_imports_map_to_lock_packages():
    gateway = PackageGateway(cache_dir=Path("unused"), lock=excerpt_lock())
    found = gateway.packages_for_imports(["matplotlib.pyplot", "PIL", "os", "numpy", "dateutil", "numpy"])
    assert found == ["matplotlib", "pillow", "numpy", "python-dateutil"]


def test_resolve_puts_dependencies_first():
    gateway = PackageGateway(cache_dir=Path("unused"), lock=excerpt_lock())
    order = gateway.resolve(["matplotlib"])
    assert order == [
        "numpy", "contourpy", "six", "cycler", "fonttools", "kiwisolver", "packaging",
        "pillow", "pyparsing", "python-dateutil", "pytz", "matplotlib",
    ]  # fmt: skip
    # The lock spells some dependencies unnormalized (pydantic_core); names come out normalized.
    order = gateway.resolve(["Pydantic", "numpy"])
    assert order.index("pydantic-core") < order.index("pydantic")
    assert order.index("typing-extensions") < order.index("pydantic-core")
    assert order[-1] == "numpy" and len(order) == len(set(order))
    assert gateway.lock_entry("Pillow")["version"] == "12.2.0"


def test_unknown_package_says_to_use_pypi():
    gateway = PackageGateway(cache_dir=Path("unused"), lock=excerpt_lock())
    with pytest.raises(
        PackageError, match=r"no package 'foo' in the Pyodide lock; for PyPI use install\('foo'\)"
    ):
        gateway.resolve(["foo"])
    with pytest.raises(PackageError, match="no package 'foo'"):
        gateway.lock_entry("foo")


def test_default_base_url_is_the_cdn_of_the_lock_version(tmp_path):
    # Recent locks carry no version: the npm package's package.json beside the lock tells it.
    npm_package = tmp_path / "node_modules" / "pyodide"
    npm_package.mkdir(parents=True)
    (npm_package / "pyodide-lock.json").write_text(json.dumps(excerpt_lock()))
    (npm_package / "package.json").write_text(json.dumps({"name": "pyodide", "version": "314.0.7"}))
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock=npm_package / "pyodide-lock.json")
    assert gateway.base_url == "https://cdn.jsdelivr.net/pyodide/v314.0.7/full/"

    unknown = PackageGateway(cache_dir=tmp_path / "cache", lock=excerpt_lock())
    assert unknown.base_url is None
    with pytest.raises(PackageError, match="pass base_url="):
        unknown.fetch_pyodide(["six"])


# -- Pyodide packages from a mirror ------------------------------------------------


def test_fetch_from_mirror_verifies_and_reuses_the_cache(tmp_path, mirror):
    cache = tmp_path / "cache"
    # The mirror's own lock adds tinya/tinyb to the given lock.
    gateway = PackageGateway(cache_dir=cache, lock=excerpt_lock(), base_url=mirror)
    assert gateway.packages_for_imports(["tinyb_extra", "numpy"]) == ["tinyb", "numpy"]

    wheels = gateway.fetch_pyodide(["TinyA"])
    assert [(w.name, w.version, w.source) for w in wheels] == [
        ("tinyb", "2.0", "pyodide"),
        ("tinya", "1.0", "pyodide"),
    ]
    for wheel in wheels:
        assert wheel.path.parent == cache / "pyodide"
        assert wheel.path.read_bytes() == (mirror / wheel.path.name).read_bytes()
        assert wheel.sha256 == sha256_of(wheel.path) == gateway.lock_entry(wheel.name)["sha256"]

    # A damaged cache file is noticed and fetched again.
    wheels[0].path.write_bytes(b"damaged")
    assert gateway.fetch_pyodide(["tinyb"])[0].sha256 == sha256_of(wheels[0].path)

    # With the mirror gone, the cache still serves, also offline from an unreachable URL.
    lock = mirror_lock(mirror)
    shutil.rmtree(mirror)
    assert gateway.fetch_pyodide(["tinya"]) == wheels
    offline = PackageGateway(
        cache_dir=cache, lock=lock, base_url=f"http://127.0.0.1:{closed_port()}/", offline=True
    )
    assert offline.fetch_pyodide(["tinya"]) == wheels
    assert not list(cache.rglob("*.part"))


def test_sha_mismatch_is_refused_and_the_file_deleted(tmp_path, mirror):
    lock = mirror_lock(mirror)
    lock["packages"]["tinyb"]["sha256"] = "f" * 64
    (mirror / "pyodide-lock.json").write_text(json.dumps(lock))
    cache = tmp_path / "cache"
    gateway = PackageGateway(cache_dir=cache, lock={"packages": {}}, base_url=mirror.as_uri())
    with pytest.raises(PackageError, match="sha256 mismatch for 'tinyb'.*the file was deleted"):
        gateway.fetch_pyodide(["tinya"])
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_missing_mirror_file_and_missing_mirror(tmp_path, mirror):
    (mirror / mirror_lock(mirror)["packages"]["tinyb"]["file_name"]).unlink()
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=mirror)
    with pytest.raises(PackageError, match="'tinyb' is missing from the mirror folder"):
        gateway.fetch_pyodide(["tinyb"])
    with pytest.raises(PackageError, match="mirror folder .* does not exist"):
        PackageGateway(cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=tmp_path / "nowhere")


def test_allow_and_deny_cover_dependencies(tmp_path, mirror):
    def gateway(**lists):
        return PackageGateway(
            cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=mirror, **lists
        )

    with pytest.raises(PackageError, match=r"'tinyb' \(needed by tinya\) is in deny= \(tinyb\)"):
        gateway(deny=["TinyB"]).fetch_pyodide(["tinya"])
    with pytest.raises(
        PackageError, match=r"'tinyb' \(needed by tinya\) is not in allow= \(tinya\); add it to allow="
    ):
        gateway(allow=["tinya"]).fetch_pyodide(["tinya"])
    with pytest.raises(PackageError, match="'tinya' is in deny="):
        gateway(allow=["tinya", "tinyb"], deny=["tinya"]).fetch_pyodide(["tinya"])
    assert [w.name for w in gateway(allow=["tinya", "tinyb"]).fetch_pyodide(["tinya"])] == ["tinyb", "tinya"]


def test_unreachable_base_url_fails_fast(tmp_path, mirror):
    url = f"http://127.0.0.1:{closed_port()}/pyodide/"
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=url)
    started = time.monotonic()
    with pytest.raises(PackageError) as caught:
        gateway.fetch_pyodide(["tinyb"])
    assert time.monotonic() - started < 5
    assert url in str(caught.value) and "base_url=/path/to/mirror" in str(caught.value)

    offline = PackageGateway(
        cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=url, offline=True
    )
    with pytest.raises(
        PackageError,
        match=r"offline, and 'tinyb' is not in the package cache.*throwaway setup --package tinyb",
    ):
        offline.fetch_pyodide(["tinyb"])


# -- PyPI ------------------------------------------------------------------------


def test_pypi_wheels_with_lock_dependencies_then_offline(tmp_path, mirror):
    """pypng is pure Python; numpy-financial needs numpy, which only the lock has for the guest."""
    numpy = make_wheel(mirror, "numpy", "2.4.6", GUEST_TAG)
    lock = mirror_lock(mirror)
    lock["packages"]["numpy"] = lock_entry("numpy", "2.4.6", numpy.name, sha256_of(numpy), ["numpy"])
    (mirror / "pyodide-lock.json").write_text(json.dumps(lock))
    cache = tmp_path / "cache"

    gateway = PackageGateway(cache_dir=cache, lock={"info": INFO, "packages": {}}, base_url=mirror)
    wheels = gateway.fetch_pypi(["pypng", "numpy-financial"])
    sources = {w.name: w.source for w in wheels}
    assert sources == {"numpy": "pyodide", "pypng": "pypi", "numpy-financial": "pypi"}
    assert wheels[0].name == "numpy" and wheels[0].path == cache / "pyodide" / numpy.name
    for wheel in wheels:
        assert wheel.path.is_file() and sha256_of(wheel.path) == wheel.sha256
        assert wheel.source == "pyodide" or wheel.path.name.endswith("-none-any.whl")

    # Offline, with the mirror gone, the same requirements (any order, any spelling) resolve from the cache.
    shutil.rmtree(mirror)
    offline = PackageGateway(cache_dir=cache, lock=lock, offline=True)
    started = time.monotonic()
    assert offline.fetch_pypi(["Numpy_Financial", "PyPNG"]) == wheels
    assert time.monotonic() - started < 1
    with pytest.raises(
        PackageError, match=r"offline, and six was never fetched.*throwaway setup --package six"
    ):
        offline.fetch_pypi(["six"])
    # The lists apply to what the cache serves, too.
    denied = PackageGateway(cache_dir=cache, lock=lock, offline=True, deny=["numpy"])
    with pytest.raises(PackageError, match=r"'numpy' \(needed by numpy-financial pypng\) is in deny="):
        denied.fetch_pypi(["pypng", "numpy-financial"])


def test_pypi_package_with_only_compiled_wheels_fails_clearly(tmp_path):
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock={"info": INFO, "packages": {}})
    with pytest.raises(PackageError) as caught:
        gateway.fetch_pypi(["markupsafe"])
    message = str(caught.value)
    assert "No matching distribution found for markupsafe" in message
    assert "pure-Python wheels (py3-none-any) or wheels built for pyemscripten_2026_0_wasm32" in message


def test_pypi_unreachable_index_fails_fast(tmp_path, monkeypatch):
    # The user's pip configuration rules: here, an index nobody answers on.
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", f"http://127.0.0.1:{closed_port()}/simple/")
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", "")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock={"info": INFO, "packages": {}})
    started = time.monotonic()
    with pytest.raises(PackageError, match=r"pip could not get pypng .*a server could not be reached"):
        gateway.fetch_pypi(["pypng"])
    assert time.monotonic() - started < 15


def test_pypi_dependency_denied(tmp_path):
    gateway = PackageGateway(
        cache_dir=tmp_path / "cache", lock={"info": INFO, "packages": {}}, deny=["tzdata"]
    )
    with pytest.raises(PackageError, match=r"'tzdata' \(needed by python-dateutil\) is in deny="):
        gateway.fetch_pypi(["python-dateutil"])
    assert not list((tmp_path / "cache").rglob("*.whl"))


def test_pypi_refuses_before_running_pip(tmp_path, mirror):
    gateway = PackageGateway(
        cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), base_url=mirror, deny=["pypng"]
    )
    started = time.monotonic()
    for bad in [
        "--index-url=http://example.invalid/",
        "-r/etc/passwd",
        "pkg @ https://example.invalid/x.whl",
        "./local",
        "",
    ]:
        with pytest.raises(PackageError, match="not a requirement the sandbox accepts"):
            gateway.fetch_pypi([bad])
    with pytest.raises(PackageError, match="'pypng' is in deny="):
        gateway.fetch_pypi(["pypng>=0.2"])
    # A bare name the lock has is served from the Pyodide side, without pip.
    assert [(w.name, w.source) for w in gateway.fetch_pypi(["TinyA"])] == [
        ("tinyb", "pyodide"),
        ("tinya", "pyodide"),
    ]
    assert time.monotonic() - started < 1
    with pytest.raises(PackageError, match="pypi=False"):
        PackageGateway(cache_dir=tmp_path / "cache", lock=mirror_lock(mirror), pypi=False).fetch_pypi(["six"])


def test_pypi_dependency_markers_describe_the_guest(tmp_path, mirror):
    """pip alone would judge `; sys_platform == ...` and `; python_version ...` for the host."""
    lock = mirror_lock(mirror)
    requires = {
        "throwaway-probe-py314": 'python_version >= "3.14"',
        "throwaway-probe-emscripten": 'sys_platform == "emscripten"',
        "throwaway-probe-py311": 'python_version < "3.12"',
        "throwaway-probe-linux": 'sys_platform == "linux"',
    }
    for name, version, deps in [
        ("throwaway-probe", "1.0", [f"{dep}; {marker}" for dep, marker in requires.items()]),
        *((dep, "1.0", []) for dep in requires),
    ]:
        wheel = make_wheel(mirror, name, version, requires=deps)
        lock["packages"][name] = lock_entry(
            name, version, wheel.name, sha256_of(wheel), [name.replace("-", "_")]
        )
    gateway = PackageGateway(cache_dir=tmp_path / "cache", lock=lock, base_url=mirror)
    # With a specifier the requirement goes through pip, which sees the lock's wheels.
    wheels = gateway.fetch_pypi(["throwaway-probe>=1"])
    assert sorted(w.name for w in wheels) == [
        "throwaway-probe",
        "throwaway-probe-emscripten",
        "throwaway-probe-py314",
    ]
    assert {w.source for w in wheels} == {"pyodide"}
