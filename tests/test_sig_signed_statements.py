"""Signed statements (checklist §15 SIG-*, V2-26): a JWS over the statement, sent as a multipart attachment.

Keys are generated once per module with ``cryptography``; statements are signed with PyJWT's PyJWS
(compact serialisation) exactly as a Learning Record Provider would.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from jwt.api_jws import PyJWS

from .conftest import statement, unique_activity, unique_agent
from .helpers import CRLF, assert_not_stored, error_message, json_part, multipart, part

SIGNATURE = "http://adlnet.gov/expapi/attachments/signature"
BOUNDARY = "sig-boundary-0b2f"


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def self_signed_certificate(key) -> str:
    """Base64 DER of a self-signed X.509 certificate for ``key`` (the form x5c wants)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "xAPI statement signer")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def jws(payload: bytes, key, algorithm: str = "RS256", headers: dict | None = None) -> bytes:
    return PyJWS().encode(payload, key, algorithm=algorithm, headers=headers).encode()


def signature_attachment(token: bytes, content_type: str = "application/octet-stream") -> dict[str, Any]:
    return {
        "usageType": SIGNATURE,
        "display": {"en-US": "Signature"},
        "contentType": content_type,
        "length": len(token),
        "sha2": hashlib.sha256(token).hexdigest(),
    }


def post_signed(client, signed: dict, *raw: bytes):
    return client.post(
        "/statements",
        content=multipart(json_part(signed), *(part(content) for content in raw), boundary=BOUNDARY),
        headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )


def sign(
    st: dict,
    key,
    algorithm: str = "RS256",
    *,
    payload: bytes | None = None,
    headers: dict | None = None,
    content_type: str = "application/octet-stream",
) -> tuple[dict, bytes]:
    """The statement with a signature attachment added, and the JWS bytes to send as its part."""
    token = jws(json.dumps(st).encode() if payload is None else payload, key, algorithm, headers)
    signed = copy.deepcopy(st)
    signed.setdefault("attachments", []).append(signature_attachment(token, content_type))
    return signed, token


def new_statement(**extra: Any) -> dict:
    return statement(id=str(uuid.uuid4()), **extra)


def returned_parts(response) -> dict[str, bytes]:
    """The raw parts (by hash) of a multipart/mixed GET response."""
    boundary = response.headers["content-type"].split("boundary=", 1)[1].strip('"')
    body = response.content
    end = body.rindex(CRLF + b"--" + boundary.encode() + b"--")
    sections = body[len(b"--" + boundary.encode() + CRLF) : end].split(
        CRLF + b"--" + boundary.encode() + CRLF
    )
    found = {}
    for section in sections[1:]:
        head, _, content = section.partition(CRLF + CRLF)
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n"))
        found[headers["X-Experience-API-Hash"]] = content
    return found


# --- SIG-3: algorithms ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
def test_sig3_rsa_sha_algorithms_are_accepted(any_xapi, rsa_key, algorithm):
    """SIG-3: RS256, RS384 and RS512 signatures are all accepted."""
    st = new_statement()
    signed, token = sign(st, rsa_key, algorithm)
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 200, response.text
    assert response.json() == [st["id"]]


@pytest.mark.parametrize(
    "algorithm, key",
    [
        ("HS256", lambda _: b"a-shared-secret-that-is-long-enough-for-hs256!"),
        ("HS512", lambda _: b"a-shared-secret-that-is-long-enough-for-hs512-as-well-as-hs256!!!"),
        ("PS256", lambda rsa_key: rsa_key),
        ("ES256", lambda _: ec.generate_private_key(ec.SECP256R1())),
        ("none", lambda _: None),
    ],
)
def test_sig3_other_algorithms_are_rejected(any_xapi, rsa_key, algorithm, key):
    """SIG-3: any algorithm but RS256/384/512 (HMAC, RSA-PSS, ECDSA, none) → 400 naming the algorithm."""
    st = new_statement()
    signed, token = sign(st, key(rsa_key), algorithm)
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400, response.text
    assert algorithm in error_message(response)
    assert_not_stored(any_xapi, st["id"])


# --- SIG-1: the signature attachment -------------------------------------------------------------


def test_sig1_signature_needs_octet_stream_content_type(any_xapi, rsa_key):
    """SIG-1: the signature attachment's contentType must be application/octet-stream → else 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key, content_type="application/jose")
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400
    assert "application/octet-stream" in error_message(response)
    assert_not_stored(any_xapi, st["id"])


@pytest.mark.parametrize(
    "token",
    [b"not a jws at all", b"a.b", b"e30.e30.e30.e30", b"\xff\xfe\x00binary", b""],
    ids=["text", "two-segments", "four-segments", "binary", "empty"],
)
def test_sig1_unparsable_jws_is_rejected(any_xapi, token):
    """SIG-1: a signature part that is not a JWS in compact serialisation → 400."""
    st = new_statement()
    signed = dict(st, attachments=[signature_attachment(token)])
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400, response.text
    assert "signature" in error_message(response)
    assert_not_stored(any_xapi, st["id"])


def test_sig1_signature_sha2_and_length_cover_the_jws_bytes(any_xapi, rsa_key):
    """SIG-1: sha2 is computed over the JWS bytes; declaring the hash of the payload instead → 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key)
    signed["attachments"][0]["sha2"] = hashlib.sha256(json.dumps(st).encode()).hexdigest()
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400
    assert_not_stored(any_xapi, st["id"])


# --- SIG-2 / SIG-4: the payload -----------------------------------------------------------------


def test_sig2_payload_that_is_not_json_is_rejected(any_xapi, rsa_key):
    """SIG-2: the payload must be valid JSON → 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key, payload=b'{"actor": {"mbox": ')
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400
    assert "JSON" in error_message(response)
    assert_not_stored(any_xapi, st["id"])


@pytest.mark.parametrize(
    "payload", [b"[]", b"42", b'"a statement"', b"{}"], ids=["array", "number", "string", "empty"]
)
def test_sig2_payload_that_is_not_the_statement_is_rejected(any_xapi, rsa_key, payload):
    """SIG-2 / SIG-4: JSON that is not the statement → 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key, payload=payload)
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400
    assert "payload" in error_message(response)


def test_sig2_payload_is_the_statement_before_the_signature_was_added(any_xapi, rsa_key):
    """SIG-2: a statement that already has another attachment is signed with that attachment in the
    payload; only the signature attachment is added afterwards."""
    other = {
        "usageType": "http://example.com/attachment-usage/certificate",
        "display": {"en-US": "cert"},
        "contentType": "application/pdf",
        "length": 3,
        "sha2": "b" * 64,
        "fileUrl": "https://files.example/cert.pdf",
    }
    st = new_statement(attachments=[other])
    signed, token = sign(st, rsa_key)
    assert [a["usageType"] for a in signed["attachments"]] == [other["usageType"], SIGNATURE]
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 200, response.text


def test_sig2_payload_without_id_signs_a_statement_with_id(any_xapi, rsa_key):
    """SIG-2/SIG-4: the id may be assigned after signing (an LRS-assignable property)."""
    st = statement()
    signed, token = sign(st, rsa_key)
    signed["id"] = str(uuid.uuid4())
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 200, response.text
    assert response.json() == [signed["id"]]


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda st: st.update(result={"success": True}), id="result-added"),
        pytest.param(lambda st: st.update(actor=unique_agent()), id="other-actor"),
        pytest.param(lambda st: st["verb"].update(id="http://adlnet.gov/expapi/verbs/failed"), id="verb-id"),
        pytest.param(lambda st: st.update(object=unique_activity()), id="other-object"),
        pytest.param(lambda st: st.update(id=str(uuid.uuid4())), id="other-id"),
        pytest.param(lambda st: st.update(timestamp="2024-01-01T00:00:00Z"), id="timestamp-instant"),
        pytest.param(lambda st: st.update(context={"language": "en-US"}), id="context-added"),
    ],
)
def test_sig4_payload_differing_from_the_statement_is_rejected(any_xapi, rsa_key, change):
    """SIG-4: the payload must be logically equal to the received statement; a real difference → 400."""
    st = new_statement(timestamp="2024-06-01T10:00:00.000Z")
    signed, token = sign(st, rsa_key)
    change(signed)
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400, response.text
    assert "does not match" in error_message(response)
    assert_not_stored(any_xapi, signed["id"])


def _group_statement() -> dict:
    members = [unique_agent("A"), unique_agent("B")]
    return new_statement(
        actor={"objectType": "Group", "member": members},
        timestamp="2024-06-01T10:00:00.000Z",
        context={"registration": str(uuid.uuid4()), "contextActivities": {"parent": [unique_activity()]}},
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda st: st.update(timestamp="2024-06-01T12:00:00+02:00"), id="timestamp-zone"),
        pytest.param(lambda st: st["actor"]["member"].reverse(), id="member-order"),
        pytest.param(
            lambda st: st["actor"]["member"][0].update(
                mbox=st["actor"]["member"][0]["mbox"].replace("example.com", "Example.COM")
            ),
            id="mbox-domain-case",
        ),
        pytest.param(lambda st: st.update(id=st["id"].upper()), id="uuid-case"),
        pytest.param(
            lambda st: st["context"]["contextActivities"].update(
                parent=st["context"]["contextActivities"]["parent"][0]
            ),
            id="single-context-activity",
        ),
        pytest.param(lambda st: st.update(version="1.0.0"), id="version-added"),
        pytest.param(lambda st: st["verb"].update(display={"de-DE": "abgeschlossen"}), id="verb-display"),
        pytest.param(
            lambda st: st["object"].update(definition={"name": {"fr-FR": "Autre"}}), id="activity-definition"
        ),
    ],
)
def test_sig4_payload_equal_under_the_comparison_rules_is_accepted(any_xapi, rsa_key, change):
    """SIG-4 + LIFE-2: differences the immutability exceptions allow (timestamp zone, member order, e-mail
    domain case, UUID case, context activity form, version, verb display, activity definition) do not make
    the payload differ → 200."""
    st = _group_statement()
    signed, token = sign(st, rsa_key)
    change(signed)
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 200, response.text


def test_sig4_v1_result_duration_is_compared_as_a_string(xapi, rsa_key):
    """SIG-4 + LIFE-2 (1.0.3): Result Duration is explicitly compared as a string in 1.0.3, so a payload
    with PT1.001S does not sign a statement with PT1.009S → 400."""
    st = new_statement(result={"duration": "PT1.001S"})
    signed, token = sign(st, rsa_key)
    signed["result"] = {"duration": "PT1.009S"}
    response = post_signed(xapi, signed, token)
    assert response.status_code == 400, response.text
    assert_not_stored(xapi, st["id"])


def test_sig4_v2_duration_digits_beyond_hundredths_are_ignored(xapi2, rsa_key):
    """SIG-4 + V2-20 (2.0): comparisons, signature checks included, ignore duration digits beyond 0.01 s."""
    st = new_statement(result={"duration": "PT1.001S"})
    signed, token = sign(st, rsa_key)
    signed["result"] = {"duration": "PT1.009S"}
    response = post_signed(xapi2, signed, token)
    assert response.status_code == 200, response.text


# --- SIG-5: X.509 -----------------------------------------------------------------------------------


def test_sig5_x5c_certificate_chain_is_used_to_verify(any_xapi, rsa_key):
    """SIG-5: with an x5c header the signature is checked against the certificate → valid is 200."""
    st = new_statement()
    signed, token = sign(st, rsa_key, headers={"x5c": [self_signed_certificate(rsa_key)]})
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 200, response.text


def test_sig5_x5c_certificate_of_another_key_is_rejected(any_xapi, rsa_key, other_rsa_key):
    """SIG-5: a signature that does not verify against its own x5c certificate → 400, nothing stored."""
    st = new_statement()
    signed, token = sign(st, rsa_key, headers={"x5c": [self_signed_certificate(other_rsa_key)]})
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400, response.text
    assert "verif" in error_message(response)
    assert_not_stored(any_xapi, st["id"])


def test_sig5_tampered_signature_with_x5c_is_rejected(any_xapi, rsa_key):
    """SIG-5: flipping the signature bytes of an x5c-signed JWS → 400."""
    st = new_statement()
    token = jws(json.dumps(st).encode(), rsa_key, headers={"x5c": [self_signed_certificate(rsa_key)]})
    head, payload, sig = token.split(b".")
    tampered = b".".join([head, payload, (b"A" if sig[:1] != b"A" else b"B") + sig[1:]])
    signed = dict(st, attachments=[signature_attachment(tampered)])
    response = post_signed(any_xapi, signed, tampered)
    assert response.status_code == 400
    assert_not_stored(any_xapi, st["id"])


@pytest.mark.parametrize(
    "x5c",
    [[], "not-a-list", ["bm90IGEgY2VydGlmaWNhdGU="], ["%%%"]],
    ids=["empty", "string", "not-der", "not-base64"],
)
def test_sig5_malformed_x5c_is_rejected(any_xapi, rsa_key, x5c):
    """SIG-5: an x5c header that holds no usable certificate → 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key, headers={"x5c": x5c})
    response = post_signed(any_xapi, signed, token)
    assert response.status_code == 400, response.text
    assert_not_stored(any_xapi, st["id"])


def test_sig5_x5c_is_not_required(any_xapi, other_rsa_key):
    """SIG-5: a signature without x5c (the suite signs that way) is accepted on form and payload."""
    st = new_statement()
    signed, token = sign(st, other_rsa_key, "RS512")
    assert post_signed(any_xapi, signed, token).status_code == 200


# --- SIG-6: storage ---------------------------------------------------------------------------------


def test_sig6_signature_is_stored_and_returned_like_any_attachment(any_xapi, rsa_key):
    """SIG-6: the signature attachment metadata is part of the statement and attachments=true returns
    the JWS bytes unchanged, so the signature can be verified again later."""
    st = new_statement()
    signed, token = sign(st, rsa_key, headers={"x5c": [self_signed_certificate(rsa_key)]})
    assert post_signed(any_xapi, signed, token).status_code == 200
    plain = any_xapi.get("/statements", params={"statementId": st["id"]}).json()
    assert plain["attachments"] == signed["attachments"]
    response = any_xapi.get("/statements", params={"statementId": st["id"], "attachments": "true"})
    assert response.status_code == 200
    assert returned_parts(response) == {hashlib.sha256(token).hexdigest(): token}
    decoded = PyJWS().decode_complete(token.decode(), rsa_key.public_key(), algorithms=["RS256"])
    assert json.loads(decoded["payload"]) == st


# --- V2-26: JWS serialisation in 2.0 -------------------------------------------------------------


def test_v2_26_compact_serialisation_is_accepted_json_serialisation_is_not(xapi2, rsa_key):
    """V2-26: 2.0 expects JWS Compact Serialization (RS256/384/512): a compact JWS → 200; the same
    signature in JWS JSON (flattened) serialisation → 400."""
    st = new_statement()
    signed, token = sign(st, rsa_key, "RS384")
    assert post_signed(xapi2, signed, token).status_code == 200

    st2 = new_statement()
    compact = jws(json.dumps(st2).encode(), rsa_key, "RS256")
    protected, payload, signature = compact.decode().split(".")
    flattened = json.dumps({"protected": protected, "payload": payload, "signature": signature}).encode()
    response = post_signed(xapi2, dict(st2, attachments=[signature_attachment(flattened)]), flattened)
    assert response.status_code == 400
    assert "compact" in error_message(response)
    assert_not_stored(xapi2, st2["id"])
