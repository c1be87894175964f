"""Test support for the study store: a throwaway PostgreSQL server and database URLs for both backends.

The server runs from Debian's binaries (scripts/install-system-deps.sh --test installs them) on a
Unix socket in a temporary folder, never on a network port; as root it runs as the `postgres` user
(PostgreSQL refuses to run as root). Every test gets a fresh database.
"""
from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

PG_USER = "ecrf"
PG_PASSWORD = "ecrf-test-password"
_COUNTER = itertools.count(1)


def pg_bindir() -> Optional[Path]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


@dataclass
class PgServer:
    bindir: Path
    base: Path
    socket_dir: Path
    as_user: list[str]

    def url(self, database: str, password: str = PG_PASSWORD) -> str:
        return f"postgresql://{PG_USER}:{password}@/{database}?host={self.socket_dir}"

    def create_database(self) -> str:
        name = f"store_{os.getpid()}_{next(_COUNTER)}"
        subprocess.run(self.as_user + [str(self.bindir / "createdb"), "-h", str(self.socket_dir), "-U", PG_USER, name],
                       check=True, env={**os.environ, "PGPASSWORD": PG_PASSWORD}, capture_output=True)
        return name

    def stop(self) -> None:
        subprocess.run(self.as_user + [str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"), "-m", "fast", "-w", "stop"],
                       capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def start_pg() -> PgServer:
    bindir = pg_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb) not found; `make test` installs them")
    base = Path(tempfile.mkdtemp(prefix="ecrf-pg-"))
    as_user: list[str] = []
    if os.getuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    os.chmod(base, 0o755)
    pwfile = base / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    if as_user:
        shutil.chown(pwfile, "postgres", "postgres")
    socket_dir = base / "sock"
    run = lambda *args: subprocess.run(as_user + list(args), check=True, capture_output=True, text=True)  # noqa: E731
    run("mkdir", "-p", str(socket_dir))
    run(str(bindir / "initdb"), "-D", str(base / "data"), "-U", PG_USER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
    opts = f"-c listen_addresses='' -c unix_socket_directories='{socket_dir}' -c fsync=off -c synchronous_commit=off -c max_connections=30"
    run(str(bindir / "pg_ctl"), "-D", str(base / "data"), "-o", opts, "-l", str(base / "server.log"), "-w", "start")
    return PgServer(bindir, base, socket_dir, as_user)


def pg_server_session() -> Iterator[PgServer]:
    server = start_pg()
    try:
        yield server
    finally:
        server.stop()
