ALTER TABLE auth_users DROP COLUMN email_canonical;
ALTER TABLE auth_users DROP COLUMN email;
