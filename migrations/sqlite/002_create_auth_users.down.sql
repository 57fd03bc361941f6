-- Rebuild the three tables without their foreign keys, then drop users.

CREATE TABLE extension_permissions_new (
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
INSERT INTO extension_permissions_new (id, user_id, tenant_id, extension_name, permission_type, granted_at, granted_by, expires_at, is_active, metadata)
    SELECT id, user_id, tenant_id, extension_name, permission_type, granted_at, granted_by, expires_at, is_active, metadata FROM extension_permissions;
DROP TABLE extension_permissions;
ALTER TABLE extension_permissions_new RENAME TO extension_permissions;
CREATE INDEX idx_extension_permissions_extension ON extension_permissions (tenant_id, extension_name) WHERE is_active = 1;

CREATE TABLE extension_auth_sessions_new (
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
INSERT INTO extension_auth_sessions_new (id, session_id, user_id, tenant_id, created_at, last_accessed_at, expires_at, is_active, user_agent, ip_address, metadata)
    SELECT id, session_id, user_id, tenant_id, created_at, last_accessed_at, expires_at, is_active, user_agent, ip_address, metadata FROM extension_auth_sessions;
DROP TABLE extension_auth_sessions;
ALTER TABLE extension_auth_sessions_new RENAME TO extension_auth_sessions;
CREATE INDEX idx_extension_auth_sessions_user ON extension_auth_sessions (tenant_id, user_id);
CREATE INDEX idx_extension_auth_sessions_expires ON extension_auth_sessions (expires_at) WHERE is_active = 1;

CREATE TABLE extension_auth_tokens_new (
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
INSERT INTO extension_auth_tokens_new (id, user_id, tenant_id, token_type, token_hash, expires_at, created_at, updated_at, is_revoked, revoked_at, metadata)
    SELECT id, user_id, tenant_id, token_type, token_hash, expires_at, created_at, updated_at, is_revoked, revoked_at, metadata FROM extension_auth_tokens;
DROP TABLE extension_auth_tokens;
ALTER TABLE extension_auth_tokens_new RENAME TO extension_auth_tokens;
CREATE INDEX idx_extension_auth_tokens_user ON extension_auth_tokens (tenant_id, user_id);
CREATE INDEX idx_extension_auth_tokens_expires ON extension_auth_tokens (expires_at) WHERE is_revoked = 0;

DROP TABLE auth_users;
