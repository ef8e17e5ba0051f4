"""A PostgreSQL cluster of the test run's own: a temporary folder, a free loopback port."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


class Cluster:
    """initdb + pg_ctl in a temporary folder; `restart()` for tests of a database that goes away."""

    def __init__(self) -> None:
        if not (shutil.which("initdb") and shutil.which("pg_ctl")):
            pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        # Not under pytest's tmp_path: its parents are private to us, and the
        # server may have to run as another user.
        self.folder = Path(tempfile.mkdtemp(prefix="throwaway-pg-"))
        self.data = self.folder / "data"
        # PostgreSQL refuses to run as root: run it as the postgres user then.
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(self.as_user + ["initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"],
                       check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.start()

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        subprocess.run(self.as_user + ["pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o",
                                       f"-p {self.port} -k {self.folder} -h 127.0.0.1 -c fsync=off "
                                       "-c max_connections=300", "start"],
                       check=True, capture_output=True)

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(self.as_user + ["pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"], check=False,
                       capture_output=True)

    def restart(self) -> None:
        self.stop("immediate")
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)
