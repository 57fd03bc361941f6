-- updated_at is kept by the database, whoever writes the row.

CREATE FUNCTION gantry_set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER trg_auth_users_updated_at
    BEFORE UPDATE ON auth_users
    FOR EACH ROW EXECUTE FUNCTION gantry_set_updated_at();

CREATE TRIGGER trg_extension_auth_tokens_updated_at
    BEFORE UPDATE ON extension_auth_tokens
    FOR EACH ROW EXECUTE FUNCTION gantry_set_updated_at();
