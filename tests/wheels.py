"""Small real wheels and mirror folders for package tests (the CDN is out of reach)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

GUEST_TAG = "cp314-cp314-pyemscripten_2026_0_wasm32"
INFO = {"abi_version": "2026_0", "arch": "wasm32", "platform": "emscripten_5_0_3", "python": "3.14.2"}


def lock_entry(name, version, file_name, sha256, imports, depends=()) -> dict:
    return {
        "name": name,
        "version": version,
        "file_name": file_name,
        "sha256": sha256,
        "imports": list(imports),
        "depends": list(depends),
        "install_dir": "site",
        "package_type": "package",
    }


def make_wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any", requires=(), body: str = "") -> Path:
    """Write a minimal valid wheel: one module plus METADATA, WHEEL and RECORD."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"NAME = {name!r}\n{body}",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: {tag}\n",
    }
    record = []
    path = folder / f"{module}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for arcname, text in files.items():
            data = text.encode()
            wheel.writestr(arcname, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{arcname},sha256={digest},{len(data)}\n")
        wheel.writestr(f"{dist_info}/RECORD", "".join(record) + f"{dist_info}/RECORD,,\n")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_mirror(folder: Path, specs, tag: str = "py3-none-any", body: str = "") -> Path:
    """A mirror folder holding a wheel per (name, version, imports, depends)
    and a pyodide-lock.json with their entries."""
    folder.mkdir(parents=True, exist_ok=True)
    packages = {}
    for name, version, imports, depends in specs:
        wheel = make_wheel(folder, name, version, tag=tag, body=body)
        packages[name] = lock_entry(name, version, wheel.name, sha256_of(wheel), imports, depends)
    (folder / "pyodide-lock.json").write_text(json.dumps({"info": INFO, "packages": packages}))
    return folder
