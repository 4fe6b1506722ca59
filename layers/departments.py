"""Departments and their write tokens.

A token is ``<department id>.<32 random bytes, urlsafe>``: the prefix names the
department so a bearer token is checked against one stored hash, not all of them. Only
a salted scrypt hash is stored; the token is shown once, when made. Checks compare in
constant time. Successful checks are cached for :data:`CACHE_SECONDS` (keyed by a
SHA-256 of the token, never the token) so that ingest does not pay scrypt per request;
a revocation therefore takes effect within that time in other server processes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
import time

from cim.errors import CimError, ConfigError, NotFoundError
from layers.store.base import Department, Store

ROLES = ("admin", "department")
#: what a 401 tells the client to send
CREDENTIALS_HINT = "Authorization: Bearer TOKEN, or HTTP Basic with the department id and the token"
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")

#: scrypt parameters: ~16 MiB and some tens of milliseconds per check
_N, _R, _P = 2**14, 8, 1
CACHE_SECONDS = 30.0


class UnauthorizedError(CimError):
    """No usable credentials: malformed, unknown or revoked, or none where needed (HTTP 401)."""


class PermissionDeniedError(CimError):
    """The caller's department may not write this (HTTP 403)."""


def hash_token(token: str) -> str:
    """A salted scrypt hash of ``token`` in the form ``scrypt$N$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(token.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    enc = base64.urlsafe_b64encode
    return f"scrypt${_N}${_R}${_P}${enc(salt).decode()}${enc(digest).decode()}"


def verify_hash(token: str, stored: str) -> bool:
    """Whether ``token`` matches a hash made by :func:`hash_token` (constant time)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        dec = base64.urlsafe_b64decode
        want = dec(digest)
        got = hashlib.scrypt(
            token.encode(), salt=dec(salt), n=int(n), r=int(r), p=int(p), dklen=len(want)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def new_token(dept_id: str) -> str:
    """A fresh random token for a department."""
    return f"{dept_id}.{secrets.token_urlsafe(32)}"


def check_id(dept_id: str) -> str:
    """Refuse department ids that are not short lowercase identifiers."""
    if not _ID.match(dept_id):
        raise ConfigError(
            f"department id {dept_id!r} must be lowercase letters, digits, '-' or '_', "
            "starting with a letter (e.g. 'water')"
        )
    return dept_id


def add_department(store: Store, dept_id: str, name: str, admin: bool = False) -> str:
    """Register a department and return its token (shown once; only its hash is kept).

    Raises
    ------
    ConfigError
        When the id is malformed or already taken.
    """
    check_id(dept_id)
    if store.department_row(dept_id) is not None:
        raise ConfigError(f"department {dept_id!r} exists already (revoke it for a new token)")
    token = new_token(dept_id)
    store.add_department(
        dept_id, name or dept_id, "admin" if admin else "department", hash_token(token)
    )
    return token


def revoke(store: Store, dept_id: str) -> None:
    """Revoke a department's token: its writes are refused from now on.

    Raises
    ------
    NotFoundError
        When the department does not exist.
    """
    if not store.set_department_token(dept_id, "revoked", revoked=True):
        raise NotFoundError(f"no department {dept_id!r}")
    _CACHE.clear()


def renew(store: Store, dept_id: str) -> str:
    """Give a (possibly revoked) department a new token; the old one stops working."""
    token = new_token(dept_id)
    if not store.set_department_token(dept_id, hash_token(token), revoked=False):
        raise NotFoundError(f"no department {dept_id!r}")
    _CACHE.clear()
    return token


class _Cache:
    def __init__(self) -> None:
        self._items: dict[tuple[int, bytes], tuple[float, Department]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, bytes]) -> Department | None:
        with self._lock:
            hit = self._items.get(key)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, key: tuple[int, bytes], dept: Department) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (time.monotonic() + CACHE_SECONDS, dept)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


_CACHE = _Cache()


def authenticate(store: Store, token: str, dept_id: str | None = None) -> Department | None:
    """The department a token belongs to, or None when it is unknown or revoked.

    Parameters
    ----------
    store : Store
    token : str
        The token as the client sent it.
    dept_id : str, optional
        The user name of HTTP Basic; must match the token's department when given.
    """
    prefix = token.split(".", 1)[0]
    if dept_id is not None and dept_id != prefix:
        return None
    key = (id(store), hashlib.sha256(token.encode()).digest())
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    found = store.department_row(prefix)
    if found is None:
        verify_hash(token, hash_token("x"))  # same work either way: no timing oracle on ids
        return None
    dept, stored = found
    if dept.revoked or not verify_hash(token, stored):
        return None
    _CACHE.put(key, dept)
    return dept


def principal_from_header(
    store: Store, header: str | None, *, required: bool = False, needed_for: str = "this"
) -> Department | None:
    """The department an HTTP ``Authorization`` header authenticates.

    Accepts ``Bearer TOKEN``, or ``Basic`` with the department id as user name and the
    token as password (what SensorThings clients such as FROST send).

    Parameters
    ----------
    store : Store
    header : str or None
        The ``Authorization`` header's value ("" or None: anonymous).
    required : bool
        Refuse an anonymous caller.
    needed_for : str
        What the token is needed for, for the message (``"writing"``).

    Returns
    -------
    Department or None
        None only for an anonymous caller when ``required`` is false.

    Raises
    ------
    UnauthorizedError
        Malformed credentials, an unknown or revoked token, an unknown scheme, or no
        header where one is required.
    """
    dept: Department | None = None
    if header:
        scheme, _, cred = header.partition(" ")
        if scheme.lower() == "bearer":
            dept = authenticate(store, cred.strip())
        elif scheme.lower() == "basic":
            try:
                user, _, token = base64.b64decode(cred.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise UnauthorizedError("malformed Basic credentials") from None
            dept = authenticate(store, token, user)
        if dept is None:
            raise UnauthorizedError("unknown or revoked token")
    if required and dept is None:
        raise UnauthorizedError(f"{needed_for} needs a department token: {CREDENTIALS_HINT}")
    return dept
