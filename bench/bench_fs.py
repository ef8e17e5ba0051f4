"""File-system benchmark: prints figures, never passes or fails.

    .venv/bin/python bench/bench_fs.py

Targets on a 2-core machine: open()+read() of a small host-served file
<= 150 us; reading a 50 MB host file >= 200 MB/s; snapshot and restore of
100 files / 10 MB (figures only).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from throwaway.store import BlobStore
from throwaway.fs import FileSystem
from throwaway.sandbox import Sandbox


def main() -> None:
    host = Path(tempfile.mkdtemp())
    (host / "small.txt").write_text("hello from the host\n")
    (host / "big.bin").write_bytes(os.urandom(50 * 1024 * 1024))
    fs = FileSystem()
    fs.mount_host("/data", host)
    with Sandbox(fs=fs) as sb:
        code = """
import time, statistics
ts = []
for _ in range(2000):
    t = time.perf_counter()
    with open('/data/small.txt') as f:
        f.read()
    ts.append(time.perf_counter() - t)
statistics.median(ts)
"""
        print(f"open()+read() of a small host file (median of 2000):  {sb.exec(code).json * 1e6:8.1f} us   target <= 150 us")
        code = """
import time
t = time.perf_counter()
with open('/data/big.bin', 'rb') as f:
    n = len(f.read())
n / (time.perf_counter() - t) / 1e6
"""
        sb.exec(code)  # warm the host's page cache
        print(f"read of a 50 MB host file:                           {sb.exec(code).json:8.1f} MB/s target >= 200 MB/s")

        sb.exec("import os\nos.makedirs('/home/user/bench', exist_ok=True)\n"
                "for i in range(100):\n    open(f'/home/user/bench/f{i}.bin', 'wb').write(os.urandom(100 * 1024))")
        store = BlobStore(tempfile.mkdtemp())
        t = time.perf_counter()
        digest = sb.snapshot(store)
        snap = time.perf_counter() - t
    with Sandbox() as fresh:
        fresh.exec("1")
        t = time.perf_counter()
        fresh.restore(store, digest)
        restore = time.perf_counter() - t
        n = fresh.exec("len(__import__('os').listdir('/home/user/bench'))").json
    print(f"snapshot of 100 files / 10 MB:                       {snap * 1000:8.1f} ms")
    print(f"restore of it into a fresh sandbox ({n} files):       {restore * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
