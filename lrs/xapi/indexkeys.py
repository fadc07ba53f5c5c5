"""Index keys of bounded width: any identifier xAPI allows can be stored and looked up.

xAPI sets no length limit on IRIs, mailto addresses, account names or document ids, but a
database index entry has one (PostgreSQL btree and GIN entries about 2.7 KB). Stores therefore
never index an identifier itself when it is long: ``index_key`` keeps a value of at most
``INDEX_KEY_MAX_BYTES`` bytes (UTF-8) as it is and replaces a longer one by ``DIGEST_MARK`` and
its SHA-256 in hex (72 characters). The full value stays where it was (in the statement, the
document's ``doc_id``), so nothing is lost; only the lookup goes through the digest.

SHA-256 is collision resistant (finding two values with one digest takes about 2^128 work), so
two different identifiers never share a key in practice, and stores do not compare the full
values again. A short value that itself starts with ``DIGEST_MARK`` is hashed too, so no
stored value can pose as the digest of another.

``lrs_index_key`` in the PostgreSQL migration ``0002_index_keys.sql`` is the same function in
SQL (used to rewrite rows stored before it); the store contract tests check that they agree.
"""

from __future__ import annotations

import hashlib

INDEX_KEY_MAX_BYTES = 256
DIGEST_MARK = "#sha256:"


def index_key(value: str) -> str:
    """``value`` as stores index it: itself, or its digest when long (see the module)."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= INDEX_KEY_MAX_BYTES and not value.startswith(DIGEST_MARK):
        return value
    return DIGEST_MARK + hashlib.sha256(raw).hexdigest()


def lookup_key(key: str) -> str:
    """A statement lookup key (``"v:"`` + verb IRI, …; see ``lrs.xapi.statements``) as stores
    index it: the two-character kind stays, so key inheritance and query planning still read it,
    and the value after it goes through ``index_key``."""
    return key[:2] + index_key(key[2:])
