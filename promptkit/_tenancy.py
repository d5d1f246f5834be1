"""Tenants: prefix-cache isolation by default, with salts nobody can guess or read in a log.

A prefix cache is a timing side channel. If two users' requests share a prefix, the second one
is served faster and reports more cached tokens, so a user can test guesses about another
user's prompt (a PIN in a system prompt) one block at a time. vLLM isolates requests by
``cache_salt``: requests with different salts never share a block. This module turns a tenant
id into that salt::

    salt = "t-" + HMAC-SHA256(deployment secret, tenant id)[:32 hex]

so the salt is stable per tenant (a tenant keeps its own hits), unguessable without the secret,
and never the raw id. Records log only a digest of the salt (:func:`salt_digest`).

The secret comes from :class:`Tenancy` (``Tenancy(secret=...)``) or ``$PROMPTKIT_TENANT_SECRET``
(:meth:`Tenancy.from_env`). A multi-tenant client (``required=True``, the default) refuses a
request without a tenant rather than put it in a shared cache; a prefix meant to be shared by
everyone (a public system prompt) opts in with ``tenant=SharedCache.SHARED``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from promptkit.errors import TenantError

__all__ = ["SECRET_ENV", "SHARED", "SharedCache", "Tenancy", "TenantArg", "salt_digest"]

#: The environment variable holding the deployment secret.
SECRET_ENV: Final = "PROMPTKIT_TENANT_SECRET"
_MIN_SECRET_BYTES = 16


class SharedCache(enum.Enum):
    """The type of :data:`SHARED`: a request that shares the cache with everyone, on purpose."""

    SHARED = "shared"

    def __repr__(self) -> str:
        return "SHARED"


#: Pass as ``tenant=SHARED`` for a request whose prefix is public by design (no salt).
SHARED: Final = SharedCache.SHARED

TenantArg = str | SharedCache | None


@dataclass(frozen=True, slots=True)
class Tenancy:
    """How a client salts requests per tenant.

    Args:
        secret: the deployment secret (at least 16 bytes); keep it out of the code and logs.
        required: every request must name a tenant (or ``SHARED``); without one it is refused
            with :class:`TenantError`.
        default_tenant: the tenant of requests that name none (a single-tenant deployment).
    """

    secret: bytes = field(repr=False)
    required: bool = True
    default_tenant: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) < _MIN_SECRET_BYTES:
            raise TenantError(
                f"the tenant secret must be at least {_MIN_SECRET_BYTES} bytes; generate one "
                f"with `python -c 'import secrets; print(secrets.token_hex(32))'` and set "
                f"${SECRET_ENV}"
            )
        if self.default_tenant is not None:
            _check_tenant(self.default_tenant)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Tenancy | None:
        """The tenancy of ``$PROMPTKIT_TENANT_SECRET`` (multi-tenant), or ``None`` if unset."""
        value = (os.environ if environ is None else environ).get(SECRET_ENV)
        if value is None:
            return None
        return cls(secret=value.encode("utf-8", "surrogatepass"))

    def salt(self, tenant: str) -> str:
        """The cache salt of ``tenant``: a keyed hash, never the id itself."""
        _check_tenant(tenant)
        mac = hmac.new(self.secret, tenant.encode("utf-8"), hashlib.sha256)
        return "t-" + mac.hexdigest()[:32]

    def resolve(self, tenant: TenantArg) -> str | None:
        """The salt of one request: its tenant's, ``None`` for :data:`SHARED`, or an error."""
        if tenant is SHARED:
            return None
        chosen = tenant if tenant is not None else self.default_tenant
        if chosen is None:
            if self.required:
                raise TenantError(
                    "this client is multi-tenant: pass tenant='...' on every request (or "
                    "tenant=SHARED for a prefix public by design), or set a default tenant"
                )
            return None
        return self.salt(chosen)


def _check_tenant(tenant: object) -> None:
    if not isinstance(tenant, str) or not tenant:
        raise TenantError(f"a tenant id must be a non-empty string, got {type(tenant).__name__}")
    try:
        tenant.encode("utf-8")
    except UnicodeEncodeError:
        raise TenantError("a tenant id must be valid Unicode (it holds a lone surrogate)") from None


def resolve_salt(
    tenancy: Tenancy | None, *, tenant: TenantArg, cache_salt: str | None
) -> str | None:
    """The salt a request is sent with: an explicit ``cache_salt``, else its tenant's.

    Without a configured :class:`Tenancy`, ``tenant=`` is an error: salting with the raw id would
    let anyone who can guess it share that tenant's cache.
    """
    if cache_salt is not None:
        if not isinstance(cache_salt, str) or not cache_salt:
            raise TenantError(
                "cache_salt must be a non-empty string: vLLM reads '' as no salt, which would "
                "share the cache it was meant to isolate"
            )
        if tenant is not None:
            raise TenantError("pass tenant= or cache_salt=, not both")
        return cache_salt
    if tenancy is None:
        if tenant is not None and tenant is not SHARED:
            raise TenantError(
                f"tenant= needs a deployment secret to derive its cache salt: set ${SECRET_ENV} "
                "or pass Client(tenancy=Tenancy(secret=...))"
            )
        return None
    return tenancy.resolve(tenant)


def salt_digest(salt: str | None) -> str | None:
    """What a log may keep of a salt: a short digest that tells salts apart, not the salt."""
    if salt is None:
        return None
    return "h:" + hashlib.blake2b(salt.encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
