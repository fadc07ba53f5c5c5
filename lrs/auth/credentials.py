"""Issuing and verifying HTTP Basic credentials.

Secrets are stored as scrypt hashes (standard library). Hashing is deliberately slow, so a
successful verification is cached for a short time under an HMAC of the Authorization header
with a per-process random key: the cache never holds a usable secret, and a cache hit costs one
HMAC instead of a scrypt. Concurrent first requests with the same header share one scrypt run.
Revoking or adding a credential clears the cache in every server (PostgreSQL NOTIFY, MongoDB
change stream).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from lrs.store.ports import DEFAULT_TENANT, Credential, CredentialStore

from .scopes import check_scopes

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_secret(secret: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = f"{_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}"
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        actual = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), dklen=32, n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, base64.b64decode(digest))


MAX_KEY_LENGTH = 256
"""The longest credential key (characters); longer ones cannot be created, so are never looked up."""
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
"""Control characters (Unicode category Cc): in no key or secret, so never sent to a store."""


def credential_problem(key: str, secret: str) -> str | None:
    """Why no credential can have this key and secret, or ``None`` when one can."""
    if not key:
        return "the key is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"the key is longer than {MAX_KEY_LENGTH} characters"
    if ":" in key:
        return "the key contains ':' (HTTP Basic separates key and secret with it)"
    if _CONTROL.search(key) or _CONTROL.search(secret):
        return "the key or secret contains a control character"
    return None


def new_credential(
    name: str,
    scopes: list[str],
    authority_homepage: str,
    *,
    key: str | None = None,
    secret: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> tuple[Credential, str]:
    """A new credential and its secret (shown once; only the hash is stored); it reaches the
    statements and documents of ``tenant``."""
    key = key or secrets.token_hex(10)
    secret = secret or secrets.token_urlsafe(24)
    if (problem := credential_problem(key, secret)) is not None:
        raise ValueError(f"cannot create this credential: {problem}")
    authority: dict[str, Any] = {
        "objectType": "Agent",
        "name": name,
        "account": {"homePage": authority_homepage, "name": key},
    }
    credential = Credential(
        key=key,
        secret_hash=hash_secret(secret),
        scopes=frozenset(check_scopes(scopes)),
        name=name,
        authority=authority,
        created=datetime.now(timezone.utc),
        tenant=tenant,
    )
    return credential, secret


@dataclass(frozen=True, slots=True)
class SessionGrant:
    """What a cmi5 session token may reach (cmi5 §8.2): one learner's statements and documents
    in one registration, for one AU."""

    session_id: str
    registration: str
    actor_key: str
    """``lrs.xapi.agents.ifi_key`` of the learner the AU was launched for."""
    activity_id: str
    """The AU's activity id (the launch's ``activityId``)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the credential's key, scopes, authority Agent and tenant (and, for a cmi5
    session token, the session it is limited to)."""

    key: str
    scopes: frozenset[str]
    authority: dict[str, Any]
    grant: SessionGrant | None = None
    tenant: str = DEFAULT_TENANT


class SessionTokens(Protocol):
    """Verifies cmi5 session tokens (keys starting with ``SESSION_TOKEN_PREFIX``)."""

    async def verify(self, key: str, secret: str) -> Principal | None:
        """The session's principal; ``None`` for an unknown token or an ended session."""


SESSION_TOKEN_PREFIX = "cmi5-"


class AuthenticationError(Exception):
    pass


def parse_basic(header: str) -> tuple[str, str]:
    """Key and secret of a Basic Authorization header; ``AuthenticationError`` for any header
    that cannot carry an existing credential (so it never reaches a store)."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise AuthenticationError("use HTTP Basic authentication")
    try:  # ValueError: not base64 (binascii.Error), not ASCII, or not UTF-8 (UnicodeDecodeError)
        key, sep, secret = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError:
        raise AuthenticationError("malformed Basic credentials: not base64 of UTF-8 key:secret") from None
    if not sep:
        raise AuthenticationError("malformed Basic credentials: no ':' between key and secret")
    if (problem := credential_problem(key, secret)) is not None:
        raise AuthenticationError(f"malformed Basic credentials: {problem}")
    return key, secret


class Authenticator:
    def __init__(self, store: CredentialStore, cache_seconds: float = 60.0) -> None:
        self._store = store
        self._ttl = cache_seconds
        self._hmac_key = os.urandom(32)
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._pending: dict[bytes, asyncio.Future[Principal]] = {}
        self.sessions: SessionTokens | None = None
        """cmi5 session tokens, checked on every request (never cached: a session that ends
        refuses its token at once)."""

    def clear(self) -> None:
        self._cache.clear()

    async def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise AuthenticationError("credentials required (HTTP Basic)")
        token = hmac.digest(self._hmac_key, header.encode("utf-8", "surrogateescape"), "sha256")
        hit = self._cache.get(token)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        pending = self._pending.get(token)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Principal] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            principal = await self._verify(header)
            future.set_result(principal)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # waiters re-raise; mark it retrieved for the loop
            raise
        finally:
            del self._pending[token]
        if principal.grant is not None:
            return principal
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (time.monotonic() + self._ttl, principal)
        return principal

    async def _verify(self, header: str) -> Principal:
        key, secret = parse_basic(header)
        if key.startswith(SESSION_TOKEN_PREFIX) and self.sessions is not None:
            principal = await self.sessions.verify(key, secret)
            if principal is None:
                raise AuthenticationError("unknown cmi5 session token, or its session has ended")
            return principal
        credential = await self._store.find(key)
        ok = credential is not None and credential.revoked is None
        stored = credential.secret_hash if ok else _DUMMY_HASH  # same work either way: no key probing
        verified = await asyncio.to_thread(check_secret, secret, stored)
        if not (ok and verified):
            raise AuthenticationError("unknown key or wrong secret")
        return Principal(credential.key, credential.scopes, credential.authority, tenant=credential.tenant)


_DUMMY_HASH = hash_secret(secrets.token_hex(8))
