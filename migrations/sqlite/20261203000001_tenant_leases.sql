-- Several gateway processes on one store: per-tenant leases, and the
-- replicas seen alive (to spread tenants over them). Times are milliseconds
-- since the epoch (UTC), as in `jobs`.

-- One row per tenant (cloud entry and project) that a replica works: only
-- the holder polls and submits for the tenant until `expires_at`. Every
-- take-over bumps `generation`; a job write by the worker carries the
-- generation it holds and is refused once the lease is gone (fencing).
CREATE TABLE tenant_leases (
    cloud       TEXT NOT NULL,
    project_id  TEXT NOT NULL,
    holder      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (cloud, project_id)
);

CREATE INDEX tenant_leases_by_holder ON tenant_leases (holder);

-- Each replica records itself here at every renewal: the replicas seen
-- within a lease's time to live share the tenants.
CREATE TABLE gateway_replicas (
    id          TEXT PRIMARY KEY NOT NULL,
    started_at  INTEGER NOT NULL,
    seen_at     INTEGER NOT NULL
);
