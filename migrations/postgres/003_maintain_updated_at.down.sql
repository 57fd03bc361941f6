DROP TRIGGER trg_extension_auth_tokens_updated_at ON extension_auth_tokens;
DROP TRIGGER trg_auth_users_updated_at ON auth_users;
DROP FUNCTION gantry_set_updated_at();
