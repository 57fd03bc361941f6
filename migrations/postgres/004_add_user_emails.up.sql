-- Email addresses as users typed them, and a canonical form for lookups
-- (filled by 005, a WASM backfill).
ALTER TABLE auth_users ADD COLUMN email TEXT;
ALTER TABLE auth_users ADD COLUMN email_canonical TEXT;
