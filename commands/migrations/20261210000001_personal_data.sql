-- Personal data is sealed under a key per data subject (framecart_domain::personal) and
-- erased by destroying that key (crypto-shredding).

-- Each subject's data key, wrapped (sealed) by the installation's master key. A destroyed
-- key's row stays, without the key, so that no new key is ever made for an erased
-- subject. Rotating the master key rewrites `wrapped`; nothing else changes a row.
CREATE TABLE data_keys
(
    subject      text PRIMARY KEY,
    wrapped      text,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    destroyed_at timestamptz,
    CHECK ((wrapped IS NULL) = (destroyed_at IS NOT NULL))
);

CREATE FUNCTION framecart_data_key_stays_destroyed() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF TG_OP = 'DELETE' OR OLD.wrapped IS NULL THEN
        RAISE EXCEPTION 'data_keys: a destroyed key stays destroyed, and no row is deleted (subject %)', OLD.subject
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER data_keys_stay_destroyed
    BEFORE UPDATE OR DELETE ON data_keys
    FOR EACH ROW EXECUTE FUNCTION framecart_data_key_stays_destroyed();

-- `PersonalDataErased` destroys its subject's key in the transaction that appends it: the
-- record and the erasure cannot part. A subject that never had a key gets a destroyed
-- row, so none is made for it later.
CREATE FUNCTION framecart_destroy_erased_key() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    INSERT INTO data_keys (subject, wrapped, destroyed_at)
    VALUES (NEW.aggregate_id, NULL, clock_timestamp())
    ON CONFLICT (subject) DO UPDATE SET wrapped = NULL, destroyed_at = clock_timestamp()
    WHERE data_keys.wrapped IS NOT NULL;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_destroy_erased_key
    AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.aggregate_type = 'data_subject' AND NEW.event_type = 'PersonalDataErased')
EXECUTE FUNCTION framecart_destroy_erased_key();

-- Views keep the subject of what they hold, to forget it on erasure.
ALTER TABLE clicks_view ALTER COLUMN client_ip DROP NOT NULL;
ALTER TABLE clicks_view ADD COLUMN subject text;
CREATE INDEX clicks_view_by_subject ON clicks_view (subject) WHERE subject IS NOT NULL;
ALTER TABLE client_file_clicks ADD COLUMN subject text;
CREATE INDEX client_file_clicks_by_subject ON client_file_clicks (subject) WHERE subject IS NOT NULL;

-- The click aggregate's state now holds the address and cookie sealed (state version 2):
-- older snapshots hold them in clear, and are only a cache.
DELETE FROM aggregate_snapshots WHERE aggregate_type = 'click' AND state_version < 2;

-- Accounts: the lookup from an email address to its account, and the password hash,
-- outside the log (neither is in an event since `UserRegistered` 2.0). Erasure blanks a
-- row's address and hash; the row keeps the account's id and aggregate.
CREATE TABLE accounts
(
    user_id       uuid PRIMARY KEY,
    -- The user aggregate's id: the user id; a digest of the address for an account
    -- registered before (its events hold the address and hash in clear).
    aggregate_id  text        NOT NULL UNIQUE,
    email         text UNIQUE,
    password_hash text,
    -- The registration is committed; a claim without one is taken over once stale.
    registered    boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO accounts (user_id, aggregate_id, email, password_hash, registered)
SELECT (payload -> 'UserRegistered' ->> 'user_id')::uuid,
       aggregate_id,
       payload -> 'UserRegistered' ->> 'email',
       payload -> 'UserRegistered' ->> 'password_hash',
       true
FROM events
WHERE aggregate_type = 'user'
  AND event_type = 'UserRegistered';

-- The user aggregate's state no longer holds the address in clear or the hash (state
-- version 2): older snapshots do.
DELETE FROM aggregate_snapshots WHERE aggregate_type = 'user' AND state_version < 2;

-- Projection `users`: the address is blanked once erased.
ALTER TABLE users_view ALTER COLUMN email DROP NOT NULL;

-- The order aggregate's state holds the contact and address sealed (state version 2).
DELETE FROM aggregate_snapshots WHERE aggregate_type = 'order' AND state_version < 2;
