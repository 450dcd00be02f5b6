-- Change capture for search: a transactional outbox fed by triggers, with per-track versions.
-- Plain PostgreSQL 15+ (runs unchanged on Aurora PostgreSQL 15/16); on Aurora, where the
-- aws_lambda extension exists, outbox inserts also wake the publisher Lambda.
-- depends: 0004.track-search-fields
--
-- What changes a track's search document (its fields and who may see it, authz.TRACK_VIEWERS_SQL):
-- its row; a live share of it that has a grantee; such a share of a playlist holding it; its
-- playlist entries; the owner of a playlist holding it. Triggers on those tables write one outbox
-- row per affected track in the writing transaction, then NOTIFY (delivered at commit, never
-- for a rolled-back transaction, which keeps no outbox rows either).
--
-- Versions are per track, not from a global sequence: a sequence is drawn at write time, so a
-- transaction that draws 5 and commits after the one that drew 6 would be indexed as stale and
-- lost. Bumping cdc_versions takes the row's lock until commit, so transactions touching one
-- track get its versions in commit order, and a snapshot that sees version N of a track sees
-- exactly the changes up to N: the indexer reads the document and the version in one statement.
--
-- The triggers are per statement (transition tables): one version bump and one outbox row per
-- track per statement, however many rows of it changed (a playlist share, a cascade), and the
-- rows of cdc_versions are always locked in track id order, so two multi-track statements
-- cannot deadlock on them.
--
-- Writers run in READ COMMITTED (the default). Which tracks a playlist share affects depends
-- on the playlist's entries and the other way round, so both triggers lock the playlist row
-- first: whichever runs second waits for the first to commit and then sees its rows.

CREATE TABLE cdc_versions (
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    -- Kept after the track is deleted: its deletion is indexed with the last version.
    version         bigint NOT NULL CHECK (version > 0),
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- Tracks from before this migration start at version 1.
INSERT INTO cdc_versions (aggregate_type, aggregate_id, version)
SELECT 'track', id, 1 FROM tracks;

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    aggregate_type  text NOT NULL,
    aggregate_id    uuid NOT NULL,
    version         bigint NOT NULL,
    operation       text NOT NULL CHECK (operation IN ('upsert', 'delete')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    -- Failed sends: how many, the last error, and when the row may be taken again (backoff,
    -- so a row that keeps failing never blocks the ones behind it).
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    retry_at        timestamptz
);
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL;

-- Deployment settings of change capture (the publisher Lambda's ARN on Aurora).
CREATE TABLE cdc_settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);

-- Bump the version of each track and write its outbox row, in track id order. 'upsert' rows
-- only for tracks that still exist (a cascade from a track's deletion adds nothing to it).
CREATE FUNCTION cdc_touch_tracks(track_ids uuid[], op text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH bumped AS (
        INSERT INTO cdc_versions AS v (aggregate_type, aggregate_id, version)
        SELECT 'track', ids.id, 1
          FROM (SELECT DISTINCT x.id FROM unnest(track_ids) AS x(id) WHERE x.id IS NOT NULL) ids
         WHERE op = 'delete' OR EXISTS (SELECT 1 FROM tracks t WHERE t.id = ids.id)
         ORDER BY ids.id
        ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = v.version + 1
        RETURNING v.aggregate_id, v.version)
    INSERT INTO outbox (aggregate_type, aggregate_id, version, operation)
    SELECT 'track', b.aggregate_id, b.version, op FROM bumped b ORDER BY b.aggregate_id;
    IF FOUND THEN
        -- One notification per transaction: PostgreSQL folds identical ones.
        PERFORM pg_notify('musicsync_outbox', '');
    END IF;
END $$;

-- The tracks of the given playlists, after locking the playlist rows (see above). A fresh
-- snapshot per statement (READ COMMITTED) lets the query see what the lock waited for.
CREATE FUNCTION cdc_playlist_tracks(playlist_ids uuid[]) RETURNS uuid[]
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(playlist_ids) = 0 THEN
        RETURN '{}';
    END IF;
    PERFORM 1 FROM playlists WHERE id = ANY(playlist_ids) ORDER BY id FOR NO KEY UPDATE;
    RETURN ARRAY(SELECT DISTINCT track_id FROM playlist_entries
                  WHERE playlist_id = ANY(playlist_ids));
END $$;

-- tracks -------------------------------------------------------------------------------------

CREATE FUNCTION cdc_tracks_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM cdc_touch_tracks(ARRAY(SELECT id FROM new_rows), 'upsert');
    ELSIF TG_OP = 'UPDATE' THEN
        PERFORM cdc_touch_tracks(ARRAY(
            SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
             WHERE n IS DISTINCT FROM o), 'upsert');
    ELSE
        PERFORM cdc_touch_tracks(ARRAY(SELECT id FROM old_rows), 'delete');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cdc_tracks_insert AFTER INSERT ON tracks
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_tracks_changed();
CREATE TRIGGER cdc_tracks_update AFTER UPDATE ON tracks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_tracks_changed();
CREATE TRIGGER cdc_tracks_delete AFTER DELETE ON tracks
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_tracks_changed();

-- shares -------------------------------------------------------------------------------------
-- Only live shares with a grantee grant anything: a pending or revoked share changes no one's
-- view; attaching or revoking a live one does, and so does the permission of a track share
-- (it decides whether the grantee's playlists pass the track on); a playlist share's does not.

CREATE FUNCTION cdc_shares_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    track_ids uuid[];
    playlist_ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(track_id), array_agg(DISTINCT playlist_id)
          INTO track_ids, playlist_ids FROM new_rows
         WHERE grantee_id IS NOT NULL AND revoked_at IS NULL;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(track_id), array_agg(DISTINCT playlist_id)
          INTO track_ids, playlist_ids FROM old_rows
         WHERE grantee_id IS NOT NULL AND revoked_at IS NULL;
    ELSE
        -- Both sides of a change that matters: what the old share granted, and the new one.
        SELECT array_agg(x.track_id), array_agg(DISTINCT x.playlist_id)
          INTO track_ids, playlist_ids FROM (
            SELECT s.track_id, s.playlist_id
              FROM old_rows o JOIN new_rows n ON n.id = o.id,
                   LATERAL (VALUES (o.track_id, o.playlist_id, o.grantee_id, o.revoked_at),
                                   (n.track_id, n.playlist_id, n.grantee_id, n.revoked_at))
                           AS s(track_id, playlist_id, grantee_id, revoked_at)
             WHERE s.grantee_id IS NOT NULL AND s.revoked_at IS NULL
               AND (o.grantee_id, o.revoked_at, o.track_id, o.playlist_id,
                    CASE WHEN o.track_id IS NOT NULL THEN o.permission END)
                   IS DISTINCT FROM
                   (n.grantee_id, n.revoked_at, n.track_id, n.playlist_id,
                    CASE WHEN n.track_id IS NOT NULL THEN n.permission END)) x;
    END IF;
    -- array_agg skips nothing: NULLs (the other kind of object) are dropped downstream.
    PERFORM cdc_touch_tracks(
        COALESCE(track_ids, '{}')
            || cdc_playlist_tracks(array_remove(COALESCE(playlist_ids, '{}'), NULL)),
        'upsert');
    RETURN NULL;
END $$;

CREATE TRIGGER cdc_shares_insert AFTER INSERT ON shares
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_shares_changed();
CREATE TRIGGER cdc_shares_update AFTER UPDATE ON shares
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_shares_changed();
CREATE TRIGGER cdc_shares_delete AFTER DELETE ON shares
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_shares_changed();

-- playlist entries ---------------------------------------------------------------------------
-- Adding or removing a track changes who sees it through the playlist's shares; moving it
-- (position only, as every reorder does) changes nothing.

CREATE FUNCTION cdc_entries_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    track_ids uuid[];
    playlist_ids uuid[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT array_agg(track_id), array_agg(DISTINCT playlist_id)
          INTO track_ids, playlist_ids FROM new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT array_agg(track_id), array_agg(DISTINCT playlist_id)
          INTO track_ids, playlist_ids FROM old_rows;
    ELSE
        SELECT array_agg(x.track_id), array_agg(DISTINCT x.playlist_id)
          INTO track_ids, playlist_ids FROM (
            SELECT o.track_id, o.playlist_id FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE (o.track_id, o.playlist_id) IS DISTINCT FROM (n.track_id, n.playlist_id)
            UNION ALL
            SELECT n.track_id, n.playlist_id FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE (o.track_id, o.playlist_id) IS DISTINCT FROM (n.track_id, n.playlist_id)) x;
    END IF;
    IF track_ids IS NOT NULL THEN
        -- Lock the playlists (see above); the entries' tracks are what changed.
        PERFORM cdc_playlist_tracks(playlist_ids);
        PERFORM cdc_touch_tracks(track_ids, 'upsert');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cdc_entries_insert AFTER INSERT ON playlist_entries
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_entries_changed();
CREATE TRIGGER cdc_entries_update AFTER UPDATE ON playlist_entries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_entries_changed();
CREATE TRIGGER cdc_entries_delete AFTER DELETE ON playlist_entries
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION cdc_entries_changed();

-- playlists ----------------------------------------------------------------------------------
-- A playlist passes on only the tracks its owner may stream: a new owner changes that.

CREATE FUNCTION cdc_playlists_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    playlist_ids uuid[];
BEGIN
    SELECT array_agg(n.id) INTO playlist_ids
      FROM new_rows n JOIN old_rows o ON o.id = n.id
     WHERE n.owner_id IS DISTINCT FROM o.owner_id;
    IF playlist_ids IS NOT NULL THEN
        PERFORM cdc_touch_tracks(cdc_playlist_tracks(playlist_ids), 'upsert');
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER cdc_playlists_update AFTER UPDATE ON playlists
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_playlists_changed();

-- Aurora: wake the publisher Lambda ------------------------------------------------------------
-- A wake-up only: the publisher drains every unpublished row, so an invoke that is lost, fails
-- or runs before the commit costs latency, never a change (the sweeper publishes what waits
-- longer than its threshold). The payload names the first outbox row of the statement and the
-- transaction, whose commit the publisher waits for (pg_xact_status) before it drains. The
-- ARN: the session setting musicsync.publisher_arn, else cdc_settings 'publisher_arn'; no ARN,
-- no invoke. A failed invoke never fails the write.

CREATE FUNCTION cdc_wake_publisher() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    arn text := COALESCE(NULLIF(current_setting('musicsync.publisher_arn', true), ''),
                         (SELECT value FROM cdc_settings WHERE key = 'publisher_arn'));
    first_id bigint;
BEGIN
    IF arn IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT min(id) INTO first_id FROM new_rows;
    IF first_id IS NULL THEN
        RETURN NULL;
    END IF;
    BEGIN
        PERFORM aws_lambda.invoke(
            aws_commons.create_lambda_function_arn(arn),
            json_build_object('outbox_id', first_id, 'txid', pg_current_xact_id()::text),
            'Event');
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'musicsync cdc: waking the publisher failed (%); the sweeper will publish outbox row %',
            SQLERRM, first_id;
    END;
    RETURN NULL;
END $$;

-- Turn the wake-up on (and store the ARN, when given). Called below where aws_lambda exists;
-- callable again by the deployment with the ARN.
CREATE FUNCTION cdc_enable_lambda_invoke(publisher_arn text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF publisher_arn IS NOT NULL THEN
        INSERT INTO cdc_settings (key, value) VALUES ('publisher_arn', publisher_arn)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value;
    END IF;
    DROP TRIGGER IF EXISTS cdc_outbox_wake ON outbox;
    CREATE TRIGGER cdc_outbox_wake AFTER INSERT ON outbox
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION cdc_wake_publisher();
END $$;

CREATE FUNCTION cdc_disable_lambda_invoke() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DROP TRIGGER IF EXISTS cdc_outbox_wake ON outbox;
END $$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'aws_lambda')
       AND EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'aws_lambda') THEN
        BEGIN
            CREATE EXTENSION aws_lambda CASCADE;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'musicsync cdc: CREATE EXTENSION aws_lambda failed (%): the sweeper alone publishes the outbox',
                SQLERRM;
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'aws_lambda') THEN
        PERFORM cdc_enable_lambda_invoke();
    END IF;
END $$;
