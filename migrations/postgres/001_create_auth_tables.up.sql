-- The four tables of the original extension auth system.

CREATE TABLE extension_auth_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     TEXT        NOT NULL,
    tenant_id   TEXT        NOT NULL,
    token_type  TEXT        NOT NULL,
    token_hash  TEXT        NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    is_revoked  BOOLEAN     NOT NULL DEFAULT false,
    revoked_at  TIMESTAMPTZ,
    metadata    JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_extension_auth_tokens_user ON extension_auth_tokens (tenant_id, user_id);
CREATE INDEX idx_extension_auth_tokens_expires ON extension_auth_tokens (expires_at) WHERE NOT is_revoked;

CREATE TABLE extension_permissions (
    id              BIGSERIAL PRIMARY KEY,
    user_id         TEXT        NOT NULL,
    tenant_id       TEXT        NOT NULL,
    extension_name  TEXT        NOT NULL,
    permission_type TEXT        NOT NULL,
    granted_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    granted_by      TEXT,
    expires_at      TIMESTAMPTZ,
    is_active       BOOLEAN     NOT NULL DEFAULT true,
    metadata        JSONB       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT uq_extension_permissions UNIQUE (user_id, tenant_id, extension_name, permission_type)
);
CREATE INDEX idx_extension_permissions_extension ON extension_permissions (tenant_id, extension_name) WHERE is_active;

CREATE TABLE extension_auth_sessions (
    id               BIGSERIAL PRIMARY KEY,
    session_id       TEXT        NOT NULL UNIQUE,
    user_id          TEXT        NOT NULL,
    tenant_id        TEXT        NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_accessed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at       TIMESTAMPTZ NOT NULL,
    is_active        BOOLEAN     NOT NULL DEFAULT true,
    user_agent       TEXT,
    ip_address       INET,
    metadata         JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_extension_auth_sessions_user ON extension_auth_sessions (tenant_id, user_id);
CREATE INDEX idx_extension_auth_sessions_expires ON extension_auth_sessions (expires_at) WHERE is_active;

CREATE TABLE extension_auth_audit (
    id          BIGSERIAL PRIMARY KEY,
    user_id     TEXT,
    tenant_id   TEXT        NOT NULL,
    action      TEXT        NOT NULL,
    resource    TEXT,
    result      TEXT        NOT NULL,
    "timestamp" TIMESTAMPTZ NOT NULL DEFAULT now(),
    ip_address  INET,
    user_agent  TEXT,
    details     JSONB       NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX idx_extension_auth_audit_user_time ON extension_auth_audit (tenant_id, user_id, "timestamp" DESC);
CREATE INDEX idx_extension_auth_audit_time ON extension_auth_audit ("timestamp" DESC);
