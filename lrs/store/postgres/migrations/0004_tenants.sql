-- Tenants (docs/tenants.md): the registry and each credential's tenant live here, in the default
-- tenant's schema. Every other tenant's statements, documents and attachments live in a schema of
-- its own (lrs_tenant_<name>), created with the same migrations; its lrs_credentials and
-- lrs_tenants tables are never read. An installation from before tenants is the default tenant as it
-- is: nothing moves.
ALTER TABLE lrs_credentials ADD COLUMN tenant text NOT NULL DEFAULT 'default';

CREATE TABLE lrs_tenants (
    name                  text PRIMARY KEY,
    created               timestamptz NOT NULL DEFAULT now(),
    disabled              timestamptz,
    statements_per_second integer,
    storage_bytes         bigint
);
INSERT INTO lrs_tenants (name) VALUES ('default');
