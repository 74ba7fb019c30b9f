-- A reminder belongs to its credential: deleting the credential deletes its
-- reminders, and no reminder can name a credential that does not exist.
-- The key includes tenant_id, like every other one, so a reminder can only
-- ever point at a credential of its own tenant.
DELETE FROM credential_reminders r
 WHERE NOT EXISTS (
    SELECT 1 FROM credentials c
     WHERE c.tenant_id = r.tenant_id AND c.id = r.credential_id
 );

ALTER TABLE credential_reminders
    ADD CONSTRAINT credential_reminders_credential_fkey
    FOREIGN KEY (tenant_id, credential_id) REFERENCES credentials (tenant_id, id)
    ON DELETE CASCADE;
