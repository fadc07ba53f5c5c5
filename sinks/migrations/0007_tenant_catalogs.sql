-- Tenants (docs/tenants.md): the catalog of every tenant but the default one, as the merged
-- catalog document (courses and students by id). The default tenant's catalog stays in the
-- catalog tables, which its rollups, cmi5 registrations and erasures join.
CREATE TABLE lms.tenant_catalogs (
    tenant   text PRIMARY KEY CHECK (tenant <> 'default'),
    document jsonb NOT NULL,
    updated  timestamptz NOT NULL DEFAULT now()
);
