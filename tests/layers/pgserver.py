"""A throw-away PostgreSQL + PostGIS server for tests and benchmarks.

Debian's binaries (``/usr/lib/postgresql/*/bin``) run a cluster in a temporary folder,
on a free port, as an unprivileged user (``cimtest``, created when running as root);
the cluster Debian itself creates is never touched.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PG_USER = "cimtest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _postgis_available(bindir: Path) -> bool:
    version = bindir.parent.name
    return bool(glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"))


def _as_user(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as the unprivileged test user when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", PG_USER, "--", *cmd]


def _ensure_user() -> None:
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
            check=True,
        )


@dataclass
class PgServer:
    """A running PostgreSQL server for the tests."""

    port: int
    user: str
    bindir: Path
    folder: Path
    _counter: itertools.count

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{db}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(sql)

    def fresh_database(self) -> str:
        """A new database from the migrated template; its URL."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        self.admin(f"CREATE DATABASE {name} TEMPLATE cim_template")
        return self.url(name)


def pg_missing() -> str | None:
    """Why no server can be started here, or None."""
    bindir = _pg_bin()
    if bindir is None:
        return "PostgreSQL is not installed (Debian: postgresql)"
    if not _postgis_available(bindir):
        return "PostGIS is not installed (Debian: postgresql-postgis)"
    return None


def start_pg() -> PgServer:
    """Start a server with a migrated template database ``cim_template``."""
    bindir = _pg_bin()
    assert bindir is not None
    _ensure_user()
    folder = Path(tempfile.mkdtemp(prefix="cim-pg-"))
    data, sock = folder / "data", folder / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        shutil.chown(folder, PG_USER)
        shutil.chown(sock, PG_USER)
    user = PG_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    port = _free_port()
    subprocess.run(
        _as_user([str(bindir / "initdb"), "-D", str(data), "-U", user, "--auth=trust",
                  "-E", "UTF8", "--locale=C.UTF-8"]),
        check=True, capture_output=True,
    )  # fmt: skip
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=on"
    subprocess.run(
        _as_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
                  "-o", opts, "-w", "-t", "60", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    server = PgServer(port, user, bindir, folder, itertools.count())
    try:
        server.admin("CREATE DATABASE cim_template")
        from layers.store import open_store

        open_store(server.url("cim_template")).close()  # postgis + schema, once
    except BaseException:
        stop_pg(server)
        raise
    return server


def stop_pg(server: PgServer) -> None:
    """Stop the server and remove its folder."""
    subprocess.run(
        _as_user([str(server.bindir / "pg_ctl"), "-D", str(server.folder / "data"),
                  "-m", "immediate", "stop"]),
        capture_output=True,
    )  # fmt: skip
    shutil.rmtree(server.folder, ignore_errors=True)
