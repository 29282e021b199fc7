"""A local PostgreSQL 15 from Debian's packages, data under the stack directory."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg import sql

from cohortflow.devstack.process import (
    Address,
    as_user,
    ensure_debian_packages,
    owned_dir,
    port_open,
    run,
    tail,
    wait_until,
)
from cohortflow.errors import StackError

MAJOR = 15
BIN = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
SERVER_USER = "postgres"


class Postgres:
    name = "postgresql"

    def __init__(self, dsn: str, stack: Path):
        self.dsn = dsn
        parts = urlsplit(dsn)
        self.address = Address(parts.hostname or "127.0.0.1", parts.port or 5432)
        self.role = unquote(parts.username or "cohortflow")
        self.password = unquote(parts.password or "")
        self.database = parts.path.lstrip("/") or self.role
        self.home = self._home(stack / "postgres")
        self.data = self.home / "data"
        self.socket_dir = self.home / "run"
        self.log = self.home / "postgres.log"

    @staticmethod
    def _home(preferred: Path) -> Path:
        """The data home; when root, one the ``postgres`` user can reach even if the repo is private."""
        if preferred.exists() or os.geteuid() != 0:
            return preferred.resolve()
        preferred.parent.mkdir(parents=True, exist_ok=True)
        probe = as_user(SERVER_USER, ["test", "-x", str(preferred.parent.resolve())])
        if subprocess.run(probe, check=False).returncode == 0:
            return preferred
        digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:10]
        fallback = Path("/var/tmp") / f"cohortflow-{digest}" / "postgres"
        fallback.mkdir(parents=True, exist_ok=True)
        preferred.symlink_to(fallback, target_is_directory=True)
        return fallback

    @property
    def server_user(self) -> str | None:
        return SERVER_USER if os.geteuid() == 0 else None

    def answers(self) -> bool:
        return port_open(self.address)

    def install(self) -> None:
        ensure_debian_packages([f"postgresql-{MAJOR}"], [str(BIN / "pg_ctl")])

    def start(self) -> None:
        owned_dir(self.home, self.server_user)
        owned_dir(self.socket_dir, self.server_user)
        if not (self.data / "PG_VERSION").exists():
            run([str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
                 "--auth-local=trust", "--auth-host=scram-sha-256"],
                what="initdb", user=self.server_user)
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write("\ninclude_if_exists = 'cohortflow.conf'\n")
        (self.data / "cohortflow.conf").write_text(
            "# written by dev/services on every start\n"
            f"port = {self.address.port}\n"
            "listen_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.socket_dir}'\n"
            "max_connections = 300\n"
            "shared_buffers = 512MB\n"
            "max_wal_size = 4GB\n"
            "checkpoint_timeout = 15min\n"
        )
        owned_dir(self.data, self.server_user)
        run([str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"],
            what="pg_ctl start", user=self.server_user)
        self._bootstrap()

    def _bootstrap(self) -> None:
        """Create the role and database named by the DSN when they are missing."""
        with psycopg.connect(host=str(self.socket_dir), port=self.address.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [self.role]).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
                    sql.Identifier(self.role), sql.Literal(self.password)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database]).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(self.database), sql.Identifier(self.role)))

    def wait_ready(self, timeout: float = 60) -> None:
        wait_until(self._query_ok, timeout, f"PostgreSQL at {self.address}", self.log)

    def _query_ok(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def version(self) -> str | None:
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                return f"PostgreSQL {row[0].split()[0]}" if row else None
        except psycopg.Error:
            return None

    def is_ours(self) -> bool:
        return (self.data / "postmaster.pid").exists() and self.answers()

    def stop(self) -> bool:
        if not (self.data / "postmaster.pid").exists():
            return False
        try:
            run([str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                what="pg_ctl stop", user=self.server_user)
        except StackError as exc:
            raise StackError(f"{exc}\n{tail(self.log)}") from exc
        return True
