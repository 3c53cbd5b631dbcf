"""JWT bearer tokens: verification with pinned algorithms, scopes, and minting for local use.

Tokens must carry ``exp``, ``iat``, ``sub``, ``aud`` and ``iss``; the audience and
issuer must match the configuration; ``exp - iat`` may not exceed
``BREAKER_SERVICE_JWT_MAX_LIFETIME`` when it is set; ``alg`` must be the one
configured (HS256 with ``BREAKER_SERVICE_JWT_SECRET``, or RS256/ES256 with a public
key). Scopes are a space-separated ``scope`` claim (or a ``scopes`` list).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import jwt

from ..config import Settings
from ..errors import BreakerServiceError, ConfigError

__all__ = [
    "SCOPES",
    "AuthError",
    "Principal",
    "TokenVerifier",
    "check_keys",
    "mint_token",
]

SCOPES = ("breakers:read", "uploads:write", "breakers:admin")
_REQUIRED = ["exp", "iat", "sub", "aud", "iss"]


class AuthError(BreakerServiceError):
    """The request is not authenticated (401) or not allowed (403)."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and what they may do."""

    subject: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Raise a 403 ``AuthError`` unless the token grants ``scope``."""
        if scope not in self.scopes:
            msg = f"token lacks the {scope!r} scope"
            raise AuthError(msg, status=403)


ANONYMOUS_ADMIN = Principal("anonymous (AUTH_DISABLED)", frozenset(SCOPES))


class TokenVerifier:
    """Checks bearer tokens against the configured key, algorithm, audience and issuer."""

    def __init__(self, settings: Settings) -> None:
        self.disabled = settings.auth_disabled
        self.algorithm = settings.breaker_service_jwt_algorithm
        self.audience = settings.breaker_service_jwt_audience
        self.issuer = settings.breaker_service_jwt_issuer
        self.leeway = settings.breaker_service_jwt_leeway
        self.max_lifetime = settings.breaker_service_jwt_max_lifetime
        if self.algorithm == "HS256":
            secret = settings.breaker_service_jwt_secret
            self._key = secret.get_secret_value() if secret else None
        else:
            public = settings.breaker_service_jwt_public_key
            self._key = public.get_secret_value() if public else None
        if self._key is None and not self.disabled:
            msg = (
                "no token key: set BREAKER_SERVICE_JWT_SECRET (32+ bytes) or "
                "BREAKER_SERVICE_JWT_PUBLIC_KEY, or AUTH_DISABLED=true for local use only"
            )
            raise ConfigError(msg, variable="BREAKER_SERVICE_JWT_SECRET")
        # Checked now, not on the first request: a key PyJWT cannot load would
        # otherwise start a "ready" service that answers every token with a 500.
        check_keys(settings)

    def verify(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer`` header, or ``AuthError``."""
        if self.disabled:
            return ANONYMOUS_ADMIN
        if not authorization:
            msg = "missing bearer token"
            raise AuthError(msg)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            msg = "the Authorization header must be 'Bearer <token>'"
            raise AuthError(msg)
        assert self._key is not None
        try:
            claims = jwt.decode(
                token.strip(),
                self._key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            msg = "token expired"
            raise AuthError(msg) from None
        except jwt.InvalidTokenError as exc:
            msg = f"invalid token: {type(exc).__name__}"
            raise AuthError(msg) from None
        if self.max_lifetime is not None:
            _check_lifetime(claims, self.max_lifetime)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            msg = "invalid token: empty subject"
            raise AuthError(msg)
        raw = claims.get("scope", claims.get("scopes", ""))
        scopes = (
            raw.split()
            if isinstance(raw, str)
            else [str(s) for s in raw]
            if isinstance(raw, list)
            else []
        )
        return Principal(subject, frozenset(scopes))


def check_keys(settings: Settings) -> None:
    """Raise ``ConfigError`` naming the variable of any key set that cannot be used.

    The secret must be usable for HS256; the public key must load as a public key of
    the configured algorithm's type, the private key as a private one, and the two
    must be halves of one pair.
    """
    algorithm = settings.breaker_service_jwt_algorithm
    secret = settings.breaker_service_jwt_secret
    if secret is not None:
        _load_key(secret.get_secret_value(), "HS256", "BREAKER_SERVICE_JWT_SECRET")
    if algorithm == "HS256":
        return
    public_text = settings.breaker_service_jwt_public_key
    private_text = settings.breaker_service_jwt_private_key
    public = private = None
    if public_text is not None:
        variable = "BREAKER_SERVICE_JWT_PUBLIC_KEY"
        public = public_text.get_secret_value()
        if _is_private(_load_key(public, algorithm, variable)):
            msg = f"{variable} holds a private key: give only the public half (PEM)"
            raise ConfigError(msg, variable=variable)
    if private_text is not None:
        variable = "BREAKER_SERVICE_JWT_PRIVATE_KEY"
        private = private_text.get_secret_value()
        if not _is_private(_load_key(private, algorithm, variable)):
            msg = f"{variable} is not a private key (PEM)"
            raise ConfigError(msg, variable=variable)
    if public is not None and private is not None:
        probe = jwt.encode({"probe": True}, private, algorithm=algorithm)
        try:
            jwt.decode(probe, public, algorithms=[algorithm])
        except jwt.InvalidTokenError:
            msg = (
                "BREAKER_SERVICE_JWT_PRIVATE_KEY and BREAKER_SERVICE_JWT_PUBLIC_KEY are "
                "not one pair: tokens minted here would be refused"
            )
            raise ConfigError(msg, variable="BREAKER_SERVICE_JWT_PRIVATE_KEY") from None


def _is_private(key: object) -> bool:
    """Whether a loaded asymmetric key is the private half (it can serialise one)."""
    return hasattr(key, "private_bytes")


def _load_key(text: str, algorithm: str, variable: str) -> object:
    """The key PyJWT would use for ``algorithm``, or ``ConfigError`` naming ``variable``."""
    try:
        key: object = jwt.get_algorithm_by_name(algorithm).prepare_key(text)
    except Exception as exc:  # noqa: BLE001 - whatever the loader raises: unusable
        kind = "secret" if algorithm == "HS256" else "PEM key"
        hint = " (a literal \\n? use real line breaks)" if "\\n" in text else ""
        msg = (
            f"{variable} is not a usable {algorithm} {kind}: {type(exc).__name__}{hint}"
        )
        raise ConfigError(msg, variable=variable) from None
    return key


def _check_lifetime(claims: dict[str, object], max_lifetime: float) -> None:
    """Refuse a token valid for longer than ``BREAKER_SERVICE_JWT_MAX_LIFETIME``.

    A stolen long-lived token stays useful; a bound on ``exp - iat`` limits that.
    ``iat`` and ``exp`` are required and checked as numbers by PyJWT already.
    """
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        msg = "invalid token: iat and exp are required"
        raise AuthError(msg)
    if expires - issued > max_lifetime:
        msg = (
            f"token lifetime {expires - issued:g}s exceeds the maximum of "
            f"{max_lifetime:g}s"
        )
        raise AuthError(msg)


def mint_token(
    settings: Settings, *, subject: str, scopes: list[str], ttl: float
) -> str:
    """A signed token for local use (``breaker-service token``)."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        msg = f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}"
        raise ConfigError(msg, variable="--scope")
    if settings.breaker_service_jwt_algorithm == "HS256":
        secret = settings.breaker_service_jwt_secret
        if secret is None:
            msg = "set BREAKER_SERVICE_JWT_SECRET (32+ bytes) to mint tokens"
            raise ConfigError(msg, variable="BREAKER_SERVICE_JWT_SECRET")
        key = secret.get_secret_value()
    else:
        private = settings.breaker_service_jwt_private_key
        if private is None:
            msg = f"set BREAKER_SERVICE_JWT_PRIVATE_KEY to mint {settings.breaker_service_jwt_algorithm} tokens"
            raise ConfigError(msg, variable="BREAKER_SERVICE_JWT_PRIVATE_KEY")
        key = private.get_secret_value()
    longest = settings.breaker_service_jwt_max_lifetime
    if longest is not None and int(ttl) > longest:
        msg = (
            f"--ttl {ttl:g}s exceeds BREAKER_SERVICE_JWT_MAX_LIFETIME ({longest:g}s): "
            "the service would refuse the token"
        )
        raise ConfigError(msg, variable="--ttl")
    now = int(time.time())
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": settings.breaker_service_jwt_audience,
        "iss": settings.breaker_service_jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=settings.breaker_service_jwt_algorithm)


def parse_ttl(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``1h`` or ``7d`` as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            value = float(text[:-1]) * units[text[-1]]
        else:
            value = float(text)
    except ValueError:
        msg = f"--ttl {text!r} is not a duration like 90s, 15m, 1h or 7d"
        raise ConfigError(msg, variable="--ttl") from None
    if not math.isfinite(value) or value <= 0:
        msg = "--ttl must be positive and finite"
        raise ConfigError(msg, variable="--ttl")
    return value
