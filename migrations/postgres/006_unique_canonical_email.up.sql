-- gantry:no-transaction
-- Built without locking auth_users against writes.
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_auth_users_email_canonical
    ON auth_users (tenant_id, email_canonical)
    WHERE email_canonical IS NOT NULL;
