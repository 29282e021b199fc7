"""A local Redis 7 from Debian's packages.

Redis is a cache of the durable side here: no RDB or AOF, so a restart is an
empty Redis, which the worker must (and does) repair from PostgreSQL.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import redis

from cohortflow.devstack.process import (
    Address,
    ensure_debian_packages,
    port_open,
    running_pid,
    spawn,
    terminate,
    wait_until,
)


class Redis:
    name = "redis"

    def __init__(self, url: str, stack: Path):
        self.url = url
        parts = urlsplit(url)
        self.address = Address(parts.hostname or "127.0.0.1", parts.port or 6379)
        self.password = unquote(parts.password) if parts.password else None
        self.home = stack / "redis"
        self.pidfile = self.home / "redis.pid"
        self.log = self.home / "redis.log"

    def answers(self) -> bool:
        return port_open(self.address)

    def install(self) -> None:
        ensure_debian_packages(["redis-server"], ["redis-server"])

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        conf = self.home / "redis.conf"
        lines = [
            "# written by dev/services on every start",
            f"port {self.address.port}",
            "bind 127.0.0.1",
            f"dir {self.home.resolve()}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "maxclients 20000",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        conf.write_text("\n".join(lines) + "\n")
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        spawn([server, str(conf)], self.log, self.pidfile)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(self._ping, timeout, f"Redis at {self.address}", self.log)

    def _client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def _ping(self) -> bool:
        try:
            with self._client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def version(self) -> str | None:
        try:
            with self._client() as client:
                return f"Redis {client.info('server')['redis_version']}"
        except redis.RedisError:
            return None

    def is_ours(self) -> bool:
        return running_pid(self.pidfile) is not None

    def stop(self) -> bool:
        return terminate(self.pidfile, "redis")
