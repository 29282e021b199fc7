"""Bearer tokens and their scopes; a per-token sliding-window rate limit in Redis.

Only a SHA-256 of a token is stored (``api_tokens``). Scopes:

- ``views:read``: every view, badge and the freshness report;
- ``floor:<campus>/<floor>``: that floor and the mentors whose floor it is;
- ``user:<id>``: that user's notification counters (and their stream);
- ``audit:read``: the audit trail.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field

import psycopg
import redis.asyncio as aioredis

from cohortflow.errors import CohortflowError

_SCOPE = re.compile(r"^(views:read|audit:read|floor:[^/\s]+/[^/\s]+|user:\S+)$")
TOKEN_PREFIX = "cf_"


class TokenError(CohortflowError):
    """A token command got a bad scope or name, or names no token."""

    exit_code = 2


def check_scope(scope: str) -> str:
    if not _SCOPE.match(scope):
        raise TokenError(f"scope {scope!r}: expected views:read, audit:read, floor:<campus>/<floor> or user:<id>")
    return scope


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    token_hash: str
    floors: frozenset[tuple[str, str]] = field(default=frozenset())

    @classmethod
    def of(cls, name: str, scopes: list[str], digest: str) -> Principal:
        floors = frozenset(tuple(s[len("floor:"):].split("/", 1)) for s in scopes if s.startswith("floor:"))
        return cls(name, frozenset(scopes), digest, floors)  # type: ignore[arg-type]

    @property
    def all_views(self) -> bool:
        return "views:read" in self.scopes

    def floor(self, campus: str | None, floor: str | None) -> bool:
        return self.all_views or (campus, floor) in self.floors

    def user(self, user_id: str) -> bool:
        return self.all_views or f"user:{user_id}" in self.scopes


# --- the token table (synchronous: the `cohortflow tokens` commands) -----------------------
def create(conn: psycopg.Connection, name: str, scopes: list[str]) -> str:
    """A new token (returned once, never stored) for ``name`` with ``scopes``."""
    if not name or len(name) > 100:
        raise TokenError("--name: expected 1 to 100 characters")
    if not scopes:
        raise TokenError("--scope: give at least one scope")
    for scope in scopes:
        check_scope(scope)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        conn.execute("INSERT INTO api_tokens (token_hash, name, scopes) VALUES (%s, %s, %s)",
                     [token_hash(token), name, sorted(set(scopes))])
    except psycopg.errors.UniqueViolation:
        raise TokenError(f"--name {name}: a token of that name exists; revoke it or pick another name") from None
    return token


def listing(conn: psycopg.Connection) -> list[tuple]:
    return conn.execute("SELECT name, scopes, created_at, revoked_at FROM api_tokens ORDER BY created_at").fetchall()


def revoke(conn: psycopg.Connection, name: str) -> None:
    cur = conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", [name])
    if cur.rowcount == 0:
        raise TokenError(f"no active token named {name!r} (see `cohortflow tokens list`)")


class Tokens:
    """Checks bearer tokens against PostgreSQL, trusting an answer for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """(True, answer) when a check of ``token`` is fresh enough to trust, else (False, None)."""
        hit = self._cache.get(token_hash(token))
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    async def principal(self, conn: psycopg.AsyncConnection, token: str) -> Principal | None:
        digest = token_hash(token)
        now = time.monotonic()
        cur = await conn.execute("SELECT name, scopes FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
                                 [digest])
        row = await cur.fetchone()
        found = Principal.of(row[0], row[1], digest) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (now + self.ttl, found)
        return found


# KEYS[1] window set; ARGV now_ms, window_ms, limit, member. Returns 0 (allowed) or ms until a slot frees.
_WINDOW = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], window)
return 0
"""


class RateLimiter:
    """A sliding window per token: at most ``limit`` requests in any ``window`` seconds."""

    def __init__(self, client: aioredis.Redis, prefix: str, limit: int, window: float) -> None:
        self.prefix = prefix
        self.limit = limit
        self.window_ms = int(window * 1000)
        self._script = client.register_script(_WINDOW)

    async def retry_after(self, principal: Principal) -> float:
        """0 when the request may go on, else the seconds until it may."""
        now = int(time.time() * 1000)
        wait = await self._script(keys=[f"{self.prefix}ratelimit:{principal.token_hash[:24]}"],
                                  args=[now, self.window_ms, self.limit, f"{now}:{secrets.token_hex(4)}"])
        return int(wait) / 1000
