"""Scope ``import`` (this LRS's own, not part of ``all``): statements written with it keep the
``authority`` they carry — another LRS's statements moved here by ``lrs import --keep-authority``
or forwarded by another LRS — while every other credential's statements get its own authority."""

from __future__ import annotations

import uuid

from .conftest import statement

SOURCE_AUTHORITY = {
    "objectType": "Agent",
    "name": "the other LRS",
    "account": {"homePage": "https://other-lrs.example", "name": "source-client"},
}


def stored(xapi, sid: str) -> dict:
    response = xapi.get("/statements", params={"statementId": sid})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_credential_with_scope_import_keeps_the_authority_a_statement_carries(
    xapi, client_for, make_credential
):
    key, secret = make_credential(["import"], name="forwarding LRS")
    importer = client_for(auth=(key, secret))
    carried = statement(id=str(uuid.uuid4()), authority=SOURCE_AUTHORITY)
    plain = statement(id=str(uuid.uuid4()))
    assert importer.post("/statements", json=[carried, plain]).status_code == 200
    assert stored(xapi, carried["id"])["authority"] == SOURCE_AUTHORITY
    own = stored(xapi, plain["id"])["authority"]  # none carried: the credential's, as always
    assert own["name"] == "forwarding LRS" and own["account"]["name"] == key


def test_scope_all_does_not_keep_a_carried_authority(xapi, client_for, make_credential):
    key, secret = make_credential(["all"], name="an administrator")
    admin = client_for(auth=(key, secret))
    carried = statement(id=str(uuid.uuid4()), authority=SOURCE_AUTHORITY)
    assert admin.post("/statements", json=carried).status_code == 200
    got = stored(xapi, carried["id"])["authority"]
    assert got != SOURCE_AUTHORITY and got["account"]["name"] == key


def test_scope_import_writes_statements_but_reads_nothing(client_for, make_credential):
    key, secret = make_credential(["import"])
    importer = client_for(auth=(key, secret))
    assert importer.get("/statements", params={"limit": 1}).status_code == 403
    assert importer.get("/activities/state", params={"activityId": "https://x.example/a",
                                                     "agent": '{"mbox": "mailto:a@example.com"}'}).status_code == 403  # fmt: skip
