"""A new sandbox's boot, hop by hop, beside a bare Deno script loading the same snapshot.

    .venv/bin/python bench/bench_boot.py [--runs 5] [--rounds 3]

Prints figures; never passes or fails. Our runtime's JS is copied to a
temporary folder with timing marks added (console.error lines the bench
reads from the runtime's stderr), and `Sandbox().start(); exec("1 + 1")` is
timed from the host's spawn to the result, each mark against the one before.
The bare script loads Pyodide from the same boot snapshot in Deno's main
thread, with and without a V8 code cache. Turns alternate (the machine may be
shared); each figure is the median over every run, with the load average.
The runtime's CPU time (all its threads) up to the first result comes last:
it swells less with the machine's load than wall time does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MARK = 'const MARK=(n)=>console.error("MARK {who} "+n+" "+(performance.timeOrigin+performance.now()).toFixed(3));\n'
# (file, text to find, what goes before it): a mark whose text is gone (the JS changed) is left out.
MARKS = [
    ("main.js", "import { createChannel", MARK.format(who="main") + 'MARK("main.js evaluated");\n'),
    ("main.js", 'if (config?.t !== "config"', 'MARK("config read");\n'),
    ("main.js", "  const w = new Worker(", '  MARK("worker spawned");\n'),
    ("main.js", "      if (pending) w.postMessage(pending);", '      MARK("worker alive");\n'),
    ("main.js", "  ready = true;\n  snapshot = null;", '  MARK("ready");\n'),
    ("worker.js", "import { DEAD", MARK.format(who="worker") + 'MARK("worker.js evaluated");\n'),
    ("worker.js", "  const options = { indexURL", '  MARK("pyodide.mjs imported (with Node layer)");\n'
                                                 '  const __asm = (await import(new URL("pyodide.asm.mjs", "file://" + '
                                                 'm.indexURL).href)).default;\n  MARK("pyodide.asm.mjs imported");\n'),
    ("worker.js", "  if (m.make) options._makeSnapshot = true;",
     "  options.createPyodideModule = (s) => {\n    MARK(\"snapshot read, Emscripten starts\");\n"
     "    const i = s.instantiateWasm;\n    s.instantiateWasm = (imp, cb) => { MARK(\"Emscripten preamble run\"); "
     "return i(imp, (a, b) => { MARK(\"wasm compiled + instantiated\"); cb(a, b); }); };\n"
     "    return __asm(s).then((x) => { MARK(\"Emscripten init (FS, stdlib zip)\"); return x; });\n  };\n"),
    ("worker.js", "  ch = m.channel;\n", '  MARK("snapshot restored, Python bootstrapped");\n'),
    ("worker.js", "  postMessage({ t: \"ready\" });", '  MARK("our init (errno, host fs, guest module)");\n'),
]


def instrumented_js(into: Path) -> list[str]:
    """Copy the runtime's JS and guest module under `into`, marks added; the marks left out."""
    from throwaway.sandbox import runtime

    src = runtime.JS_DIR.parent
    shutil.copytree(src / "js", into / "js")
    shutil.copytree(src / "guest", into / "guest")
    missing = []
    for name, anchor, mark in MARKS:
        path = into / "js" / name
        text = path.read_text()
        if anchor in text:
            path.write_text(text.replace(anchor, mark + anchor, 1))
        else:
            missing.append(f"{name}: {anchor.strip()[:40]}")
    return missing


def use_js(folder: Path) -> None:
    """Point this process's runtimes at the instrumented copy."""
    from throwaway.sandbox import codecache, runtime, session

    for module in (runtime, session, codecache):
        module.JS_DIR = folder / "js"
        module.GUEST_FILE = folder / "guest" / "_throwaway.py"
    runtime._code_key.cache_clear()


def ours(runs: int, folder: str) -> dict:
    """In a child process: `runs` boots of the instrumented runtime; each mark's time from the spawn."""
    use_js(Path(folder))
    from throwaway.sandbox import Sandbox, process
    from throwaway.sandbox.runtime import ensure_runtime

    logs: list[str] = []

    def stderr_file():
        f = tempfile.NamedTemporaryFile(prefix="boot-", delete=False)
        logs.append(f.name)
        return f

    process._stderr_file = stderr_file
    Sandbox().start().close()  # the boot snapshot for this copy exists from here on
    ensure_runtime()  # and its code cache
    out = []
    for _ in range(runs):
        logs.clear()
        t0 = time.time() * 1000
        sb = Sandbox().start()
        t_boot = time.time() * 1000
        assert sb.exec("1 + 1").json == 2
        t_end = time.time() * 1000
        fields = Path(f"/proc/{sb.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")
        sb.close()
        marks = [("host: spawn", t0)]
        for log in logs:
            for line in Path(log).read_text().splitlines():
                if m := re.match(r"MARK (\w+) (.*) ([\d.]+)$", line):
                    marks.append((f"{m[1]}: {m[2]}", float(m[3])))
            os.unlink(log)
        marks += [("host: booted, files laid out (a cell)", t_boot), ("host: first result (1 + 1)", t_end)]
        marks.sort(key=lambda x: x[1])
        out.append({"marks": [(name, t - t0) for name, t in marks], "cpu": cpu})
    return {"runs": out}


BARE = """
const MARK=(n)=>console.error("MARK bare "+n+" "+(performance.timeOrigin+performance.now()).toFixed(3));
MARK("script evaluated");
const idx = {index!r};
const {{ loadPyodide }} = await import("file://" + idx + "pyodide.mjs");
MARK("pyodide.mjs imported (with Node layer)");
const asm = (await import("file://" + idx + "pyodide.asm.mjs")).default;
MARK("pyodide.asm.mjs imported");
const py = await loadPyodide({{ indexURL: idx, _loadSnapshot: Deno.readFile({snapshot!r}), stdout() {{}}, stderr() {{}},
  createPyodideModule: (s) => {{ MARK("snapshot read, Emscripten starts"); const i = s.instantiateWasm;
    s.instantiateWasm = (imp, cb) => {{ MARK("Emscripten preamble run"); return i(imp, (a, b) => {{ MARK("wasm compiled + instantiated"); cb(a, b); }}); }};
    return asm(s).then((x) => {{ MARK("Emscripten init (FS, stdlib zip)"); return x; }}); }} }});
MARK("snapshot restored, Python bootstrapped");
py.runPython("1 + 1");
MARK("first runPython");
"""


def bare(runs: int, deno_dir: str | None) -> dict:
    """The bare script, in Deno's main thread; with a writable DENO_DIR (code cache) or none."""
    from throwaway.sandbox.runtime import deno_bin, ensure_runtime

    rt = ensure_runtime()
    script = Path(tempfile.mkdtemp(prefix="bare-boot-")) / "bare.js"
    script.write_text(BARE.format(index=str(rt.pyodide_dir) + "/", snapshot=str(rt.snapshot_path(()))))
    env = {"PATH": os.defpath, "NO_COLOR": "1", "DENO_DIR": deno_dir or os.path.join(os.devnull, "deno")}
    cmd = [str(deno_bin()), "run", "-A", "--no-config", "--no-lock", str(script)]
    if deno_dir:
        subprocess.run(cmd, env=env, capture_output=True)  # fills the code cache
    out = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time() * 1000
        p = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        err = p.communicate()[1]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
        marks = [("host: spawn", 0.0)] + [(f"bare: {m[1]}", float(m[2]) - t0)
                                          for m in re.finditer(r"MARK bare (.*) ([\d.]+)", err)]
        out.append({"marks": marks, "cpu": cpu})
    shutil.rmtree(script.parent, ignore_errors=True)
    return {"runs": out}


def child(args: list[str]) -> dict:
    p = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{args[:2]} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def table(title: str, runs: list[dict]) -> None:
    names: list[str] = []
    at: dict[str, list[float]] = {}
    hop: dict[str, list[float]] = {}
    for run in runs:
        prev = 0.0
        for name, t in run["marks"]:
            if name not in at:
                names.append(name)
            at.setdefault(name, []).append(t)
            hop.setdefault(name, []).append(t - prev)
            prev = t
    print(f"\n{title} (median of {len(runs)} runs, ms)")
    print(f"  {'hop (ends at)':58} {'hop':>7} {'at':>7}")
    for name in sorted(names, key=lambda n: statistics.median(at[n])):
        print(f"  {name:58} {statistics.median(hop[name]):7.1f} {statistics.median(at[name]):7.1f}")
    cpus = [r["cpu"] for r in runs if r.get("cpu") is not None]
    if cpus:
        print(f"  runtime CPU time to the first result (all threads): {statistics.median(cpus):.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="boots a turn")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each side")
    parser.add_argument("--side", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        kind, arg = args.side
        print(json.dumps(ours(args.runs, arg) if kind == "ours" else bare(args.runs, arg if arg != "-" else None)))
        return
    # A fixed folder: Deno keys its code cache by module path, so the runtime's
    # code cache for the copy (made once) serves the next runs too.
    work = Path(tempfile.gettempdir()) / "throwaway-bench-boot"
    shutil.rmtree(work, ignore_errors=True)
    try:
        missing = instrumented_js(work)
        if missing:
            print("marks left out (the JS changed):", "; ".join(missing))
        sides = {"ours": ["ours", str(work)], "bare, no code cache": ["bare", "-"],
                 "bare, code cache": ["bare", str(work / "deno-dir")]}
        results: dict[str, list[dict]] = {k: [] for k in sides}
        loads = []
        for _ in range(args.rounds):
            for name, side in sides.items():
                results[name] += child(["--runs", str(args.runs), "--side", *side])["runs"]
                loads.append(os.getloadavg()[0])
        for name, runs in results.items():
            table(f"{name}: new sandbox to first result" if name == "ours" else f"{name}: loadPyodide from the snapshot",
                  runs)
        print(f"\nload average during: {min(loads):.1f}-{max(loads):.1f} ({os.cpu_count()} CPUs)")
    finally:
        shutil.rmtree(work / "deno-dir", ignore_errors=True)


if __name__ == "__main__":
    main()
