-- A tenant's API key can be revoked (`aimate tenant revoke-key`, DELETE
-- /api/admin/tenants/{id}/key) and rotated (a new key replaces the old one and clears
-- the revocation). NULL: the key works.
ALTER TABLE tenant ADD COLUMN key_revoked_at TEXT;
