-- updated_at is kept by the database, whoever writes the row, unless the
-- writer set it itself. (recursive_triggers is off, so the inner UPDATE
-- does not fire the trigger again.)

CREATE TRIGGER trg_auth_users_updated_at
AFTER UPDATE ON auth_users
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE auth_users
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;

CREATE TRIGGER trg_extension_auth_tokens_updated_at
AFTER UPDATE ON extension_auth_tokens
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN
    UPDATE extension_auth_tokens
    SET updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
    WHERE id = NEW.id;
END;
