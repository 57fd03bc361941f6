-- Users, and foreign keys to them from tokens, sessions and permissions.
-- User ids already referenced get a disabled placeholder account, so the
-- keys can be added without losing a row.

CREATE TABLE auth_users (
    id            TEXT        PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    password_hash TEXT        NOT NULL,
    tenant_id     TEXT        NOT NULL,
    is_active     BOOLEAN     NOT NULL DEFAULT true,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_auth_users_tenant ON auth_users (tenant_id);

INSERT INTO auth_users (id, username, password_hash, tenant_id, is_active)
SELECT DISTINCT ON (user_id) user_id, user_id, '!', tenant_id, false
FROM (
    SELECT user_id, tenant_id FROM extension_auth_tokens
    UNION ALL SELECT user_id, tenant_id FROM extension_auth_sessions
    UNION ALL SELECT user_id, tenant_id FROM extension_permissions
) AS referenced
ORDER BY user_id, tenant_id;

ALTER TABLE extension_auth_tokens
    ADD CONSTRAINT fk_extension_auth_tokens_user
    FOREIGN KEY (user_id) REFERENCES auth_users (id) ON DELETE CASCADE;
ALTER TABLE extension_auth_sessions
    ADD CONSTRAINT fk_extension_auth_sessions_user
    FOREIGN KEY (user_id) REFERENCES auth_users (id) ON DELETE CASCADE;
ALTER TABLE extension_permissions
    ADD CONSTRAINT fk_extension_permissions_user
    FOREIGN KEY (user_id) REFERENCES auth_users (id) ON DELETE CASCADE;
