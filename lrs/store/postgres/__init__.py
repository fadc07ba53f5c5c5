"""PostgreSQL adapters for the storage ports, the migrations, and the embedded server."""

from .credentials import PostgresCredentialStore
from .documents import PostgresDocumentStore
from .pool import create_pool, migrate
from .statements import PostgresStatementStore

__all__ = ["PostgresCredentialStore", "PostgresDocumentStore", "PostgresStatementStore", "create_pool", "migrate"]
