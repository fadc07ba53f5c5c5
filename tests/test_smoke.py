"""A first round trip through the running LRS."""

from .conftest import statement


def test_post_then_get_by_id(xapi):
    st = statement()
    (sid,) = xapi.store(st)
    response = xapi.get("/statements", params={"statementId": sid})
    assert response.status_code == 200
    got = response.json()
    assert got["id"] == sid
    assert got["actor"] == st["actor"]
    assert got["stored"].endswith("Z")
