-- AI Mate schema, PostgreSQL flavour. Keep in step with migrations/sqlite/0001_init.sql:
-- same tables, columns and indexes; only the DDL dialect differs.
-- Money is integer cents; dates are 'YYYY-MM-DD'; timestamps are RFC 3339 UTC text with
-- milliseconds, so text order is time order on both backends.

CREATE TABLE tenant (
    tenant_id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL,
    -- SHA-256 of the API key, hex. The key itself is shown once and never stored.
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at   TEXT NOT NULL
);

CREATE TABLE invoice (
    -- Identity values are never reused, so a deleted invoice's id stays 404.
    invoice_id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    BIGINT NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    customer     TEXT NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents >= 0),
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('draft', 'sent', 'paid', 'overdue')),
    issued_on    TEXT NOT NULL,
    due_on       TEXT NOT NULL,
    paid_at      TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- The guide's idx_invoices_customer, led by tenant_id because every query is scoped to one tenant.
CREATE INDEX idx_invoices_customer ON invoice (tenant_id, customer);
-- Newest-first listing and keyset pagination within a tenant.
CREATE INDEX idx_invoices_tenant_id ON invoice (tenant_id, invoice_id);
-- Dashboard aggregates by status.
CREATE INDEX idx_invoices_tenant_status ON invoice (tenant_id, status);

CREATE TABLE job (
    job_id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    BIGINT NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    customer     TEXT NOT NULL,
    title        TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('scheduled', 'in_progress', 'done', 'cancelled')),
    scheduled_on TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

-- The guide's idx_jobs_status_date, tenant-scoped.
CREATE INDEX idx_jobs_status_date ON job (tenant_id, status, created_at);
CREATE INDEX idx_jobs_tenant_id ON job (tenant_id, job_id);

CREATE TABLE user_preferences (
    tenant_id     BIGINT NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL,
    theme         TEXT NOT NULL,
    locale        TEXT NOT NULL,
    currency      TEXT NOT NULL,
    -- JSON object of notification switches, validated by the server before it is stored.
    notifications TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
