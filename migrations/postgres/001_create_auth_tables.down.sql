DROP TABLE extension_auth_audit;
DROP TABLE extension_auth_sessions;
DROP TABLE extension_permissions;
DROP TABLE extension_auth_tokens;
