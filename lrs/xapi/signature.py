"""Signed statements: a JWS (compact serialisation) carried as an attachment (PyJWT does the JWS).

The JWS payload must be the statement as it was before the signature attachment was added;
the LRS compares it with the received statement under the immutability rules. When the JWS
header carries an X.509 chain (``x5c``) the signature is verified with the first certificate's
public key; without one the LRS cannot know the signer's key, so only form and payload are
checked, as the specification allows.
"""

from __future__ import annotations

import base64
from typing import Any

import jwt
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.api_jws import PyJWS

from .compare import same_statement
from .jsontext import JsonTextError, parse_bounded
from .models import SIGNATURE_USAGE_TYPE
from .statements import StatementError

ALGORITHMS = ("RS256", "RS384", "RS512")
_JWS = PyJWS(algorithms=list(ALGORITHMS))


def signature_attachment(statement: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in statement.get("attachments", ()) if a["usageType"] == SIGNATURE_USAGE_TYPE), None)


def _header_segment(token: str) -> bytes:
    """The first (header) segment of a compact JWS, decoded."""
    segments = token.split(".")
    if len(segments) != 3:
        raise StatementError("signature attachment is not a JWS in compact serialisation (three segments)")
    try:
        return base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4))
    except ValueError:  # binascii.Error, or characters outside ASCII
        raise StatementError("signature JWS header is not base64url") from None


def _json(text: bytes, max_depth: int, what: str) -> Any:
    try:
        return parse_bounded(text, max_depth, what)
    except JsonTextError as exc:
        raise StatementError(str(exc)) from None


def _header(token: str, max_depth: int) -> tuple[str, list[str] | None]:
    """The JWS header's algorithm and X.509 chain (``x5c``), type-checked."""
    header = _json(_header_segment(token), max_depth, "the signature's JWS header")
    if not isinstance(header, dict):
        raise StatementError("the signature's JWS header must be a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise StatementError(f"signature algorithm must be one of {', '.join(ALGORITHMS)}, not {alg!r:.80}")
    if "x5c" not in header:
        return alg, None
    chain = header["x5c"]
    if not isinstance(chain, list) or not chain or not all(isinstance(c, str) for c in chain):
        raise StatementError(
            "signature x5c header must be a non-empty array of base64 certificates (strings)"
        )
    return alg, chain


def _rsa_key(certificate_b64: str, alg: str) -> rsa.RSAPublicKey:
    """The RSA public key of the chain's first certificate (``RS*`` algorithms need one)."""
    try:
        der = base64.b64decode(certificate_b64, validate=True)
        key = x509.load_der_x509_certificate(der).public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise StatementError(
            f"signature x5c certificate is not a readable X.509 certificate: {exc}"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        kind = type(key).__name__.removeprefix("_").removesuffix("PublicKey") or "non-RSA"
        raise StatementError(
            f"signature x5c certificate holds a key of type {kind}, but {alg} needs an RSA key"
        )
    return key


def verify_signature(
    statement: dict[str, Any], jws: bytes, *, max_depth: int, truncate_durations: bool = False
) -> None:
    """Raise ``StatementError`` unless ``jws`` is a valid signature of ``statement``.

    Header and payload are JSON read under the nesting limit ``max_depth``; every header field
    the LRS uses is type-checked before PyJWT sees the token."""
    try:
        token = jws.decode("ascii").strip()
    except UnicodeDecodeError:
        raise StatementError(
            "signature attachment is not a JWS in compact serialisation (not ASCII)"
        ) from None
    alg, chain = _header(token, max_depth)
    key = None if chain is None else _rsa_key(chain[0], alg)
    try:
        if key is not None:
            decoded = _JWS.decode_complete(token, key, algorithms=[alg])
        else:
            decoded = _JWS.decode_complete(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, ValueError) as exc:
        raise StatementError(f"signature does not verify: {exc}") from None
    payload = _json(decoded["payload"], max_depth, "the signature payload")
    try:
        matches = isinstance(payload, dict) and same_statement(
            payload, statement, truncate_durations=truncate_durations
        )
    except (KeyError, TypeError, AttributeError):  # a payload that is not shaped like a statement
        matches = False
    if not matches:
        raise StatementError("signature payload does not match the statement it signs")
