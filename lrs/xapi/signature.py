"""Signed statements: a JWS (compact serialisation) carried as an attachment (PyJWT does the JWS).

The JWS payload must be the statement as it was before the signature attachment was added;
the LRS compares it with the received statement under the immutability rules. When the JWS
header carries an X.509 chain (``x5c``) the signature is verified with the first certificate's
public key; without one the LRS cannot know the signer's key, so only form and payload are
checked, as the specification allows.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import jwt
import orjson
from cryptography import x509
from jwt.api_jws import PyJWS

from .compare import same_statement
from .models import SIGNATURE_USAGE_TYPE
from .statements import StatementError

ALGORITHMS = ("RS256", "RS384", "RS512")
_JWS = PyJWS(algorithms=list(ALGORITHMS))


def signature_attachment(statement: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in statement.get("attachments", ()) if a["usageType"] == SIGNATURE_USAGE_TYPE), None)


def verify_signature(statement: dict[str, Any], jws: bytes, *, truncate_durations: bool = False) -> None:
    """Raise ``StatementError`` unless ``jws`` is a valid signature of ``statement``."""
    try:
        token = jws.decode("ascii").strip()
        header = jwt.get_unverified_header(token)
    except (UnicodeDecodeError, jwt.InvalidTokenError) as exc:
        raise StatementError(f"signature attachment is not a JWS in compact serialisation: {exc}") from None
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise StatementError(f"signature algorithm must be one of {', '.join(ALGORITHMS)}, not {alg!r}")
    try:
        if "x5c" in header:
            chain = header["x5c"]
            if not isinstance(chain, list) or not chain:
                raise StatementError("signature x5c header must be a non-empty array of certificates")
            certificate = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
            decoded = _JWS.decode_complete(token, certificate.public_key(), algorithms=[alg])
        else:
            decoded = _JWS.decode_complete(token, options={"verify_signature": False})
    except (jwt.InvalidTokenError, ValueError, binascii.Error) as exc:
        raise StatementError(f"signature does not verify: {exc}") from None
    try:
        payload = orjson.loads(decoded["payload"])
    except orjson.JSONDecodeError:
        raise StatementError("signature payload is not valid JSON") from None
    try:
        matches = isinstance(payload, dict) and same_statement(
            payload, statement, truncate_durations=truncate_durations
        )
    except (KeyError, TypeError, AttributeError):  # a payload that is not shaped like a statement
        matches = False
    if not matches:
        raise StatementError("signature payload does not match the statement it signs")
