-- The four tables of the original extension auth system.
-- Timestamps are ISO 8601 UTC text; JSON is text; booleans are 0/1.

CREATE TABLE extension_auth_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    tenant_id   TEXT    NOT NULL,
    token_type  TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL UNIQUE,
    expires_at  TEXT    NOT NULL,
    created_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    is_revoked  INTEGER NOT NULL DEFAULT 0 CHECK (is_revoked IN (0, 1)),
    revoked_at  TEXT,
    metadata    TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);
CREATE INDEX idx_extension_auth_tokens_user ON extension_auth_tokens (tenant_id, user_id);
CREATE INDEX idx_extension_auth_tokens_expires ON extension_auth_tokens (expires_at) WHERE is_revoked = 0;

CREATE TABLE extension_permissions (
    id              INTEGER PRIMARY KEY,
    user_id         TEXT    NOT NULL,
    tenant_id       TEXT    NOT NULL,
    extension_name  TEXT    NOT NULL,
    permission_type TEXT    NOT NULL,
    granted_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    granted_by      TEXT,
    expires_at      TEXT,
    is_active       INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    metadata        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata)),
    CONSTRAINT uq_extension_permissions UNIQUE (user_id, tenant_id, extension_name, permission_type)
);
CREATE INDEX idx_extension_permissions_extension ON extension_permissions (tenant_id, extension_name) WHERE is_active = 1;

CREATE TABLE extension_auth_sessions (
    id               INTEGER PRIMARY KEY,
    session_id       TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    tenant_id        TEXT    NOT NULL,
    created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_accessed_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at       TEXT    NOT NULL,
    is_active        INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    user_agent       TEXT,
    ip_address       TEXT,
    metadata         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(metadata))
);
CREATE INDEX idx_extension_auth_sessions_user ON extension_auth_sessions (tenant_id, user_id);
CREATE INDEX idx_extension_auth_sessions_expires ON extension_auth_sessions (expires_at) WHERE is_active = 1;

CREATE TABLE extension_auth_audit (
    id          INTEGER PRIMARY KEY,
    user_id     TEXT,
    tenant_id   TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    resource    TEXT,
    result      TEXT    NOT NULL,
    "timestamp" TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    ip_address  TEXT,
    user_agent  TEXT,
    details     TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(details))
);
CREATE INDEX idx_extension_auth_audit_user_time ON extension_auth_audit (tenant_id, user_id, "timestamp" DESC);
CREATE INDEX idx_extension_auth_audit_time ON extension_auth_audit ("timestamp" DESC);
