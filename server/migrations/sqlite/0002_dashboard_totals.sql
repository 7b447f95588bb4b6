-- Dashboard aggregates, kept in step with every invoice and job write inside the write's
-- own transaction (server/src/totals.rs), so a dashboard read costs a few index lookups
-- whatever the size of the tables. Keep in step with the other backend's 0002.
--
-- invoice_totals holds one row per (tenant, kind, currency, bucket):
--   kind 'all'        bucket ''           every invoice; bounds every other sum, so a
--                                         write that would overflow it is refused (422)
--   kind 'status'     bucket the status   invoice count and amount per status
--   kind 'sent_due'   bucket due_on       'sent' invoices by due date
--   kind 'sent_due_month' bucket 'YYYY-MM' the same by due month. "Overdue" is the months
--                                         before this one plus this month's days before
--                                         today: exact across midnight and month ends,
--                                         and a read touches at most the past months and
--                                         this month's days, never the invoices
--   kind 'paid_month' bucket 'YYYY-MM'    'paid' invoices by the month of paid_at
-- No CHECK (count >= 0) on the sums: an upsert's VALUES row carries the delta, which is
-- negative when a write takes an invoice out, and both backends check it before the
-- conflict turns the insert into an update. Rows whose count falls to zero are deleted, so the table stays as small as the set of
-- distinct (status, currency, due date, paid month) values in use.

CREATE TABLE invoice_totals (
    tenant_id    INTEGER NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('all', 'status', 'sent_due', 'sent_due_month', 'paid_month')),
    currency     TEXT NOT NULL,
    bucket       TEXT NOT NULL,
    count        INTEGER NOT NULL,
    amount_cents INTEGER NOT NULL,
    -- bucket before currency: the dashboard reads bucket ranges across currencies.
    PRIMARY KEY (tenant_id, kind, bucket, currency)
) WITHOUT ROWID; -- the table is its key's b-tree: one b-tree to write per row, not two

CREATE TABLE job_totals (
    tenant_id INTEGER NOT NULL REFERENCES tenant (tenant_id) ON DELETE CASCADE,
    status    TEXT NOT NULL,
    count     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, status)
) WITHOUT ROWID;

-- Backfill from the rows already there.
INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents)
SELECT tenant_id, 'all', currency, '', COUNT(*), SUM(amount_cents)
FROM invoice GROUP BY tenant_id, currency;

INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents)
SELECT tenant_id, 'status', currency, status, COUNT(*), SUM(amount_cents)
FROM invoice GROUP BY tenant_id, currency, status;

INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents)
SELECT tenant_id, 'sent_due', currency, due_on, COUNT(*), SUM(amount_cents)
FROM invoice WHERE status = 'sent' GROUP BY tenant_id, currency, due_on;

INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents)
SELECT tenant_id, 'sent_due_month', currency, substr(due_on, 1, 7), COUNT(*), SUM(amount_cents)
FROM invoice WHERE status = 'sent' GROUP BY tenant_id, currency, substr(due_on, 1, 7);

INSERT INTO invoice_totals (tenant_id, kind, currency, bucket, count, amount_cents)
SELECT tenant_id, 'paid_month', currency, substr(paid_at, 1, 7), COUNT(*), SUM(amount_cents)
FROM invoice WHERE status = 'paid' AND paid_at IS NOT NULL
GROUP BY tenant_id, currency, substr(paid_at, 1, 7);

INSERT INTO job_totals (tenant_id, status, count)
SELECT tenant_id, status, COUNT(*) FROM job GROUP BY tenant_id, status;
