-- Tenants (docs/tenants.md): an erasure is of one tenant's learner. Records and tasks from before
-- tenants are the default tenant's.
ALTER TABLE lms.erasures ADD COLUMN tenant text NOT NULL DEFAULT 'default';
ALTER TABLE lms.erasure_tasks ADD COLUMN tenant text NOT NULL DEFAULT 'default';
