CREATE UNIQUE INDEX uq_auth_users_email_canonical
    ON auth_users (tenant_id, email_canonical)
    WHERE email_canonical IS NOT NULL;
