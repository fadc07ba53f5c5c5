"""Use cases: what the LRS does, independent of HTTP and of the database.

Each function takes plain, already-parsed inputs (statements as dicts, a ``Principal``, the
xAPI version) and works through the storage ports held by ``Stores``.
"""
