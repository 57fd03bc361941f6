-- gantry:no-transaction
DROP INDEX CONCURRENTLY IF EXISTS uq_auth_users_email_canonical;
