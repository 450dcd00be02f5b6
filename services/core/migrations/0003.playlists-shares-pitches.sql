-- Playlists, shares and pitches, and the recorded interactions of pitch recipients.
-- Plain PostgreSQL 15+.
-- depends: 0002.upload-processing-lease

-- Pending shares attach to a user only when the identity provider vouches for the address.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

CREATE TABLE playlists (
    id          uuid PRIMARY KEY,
    owner_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (char_length(description) <= 5000),
    -- Bumped by every change, entries included: the If-Match / 409 version of the API.
    version     bigint NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX playlists_owner_idx ON playlists (owner_id, created_at, id);

CREATE TABLE playlist_entries (
    id          uuid PRIMARY KEY,
    playlist_id uuid NOT NULL REFERENCES playlists (id) ON DELETE CASCADE,
    track_id    uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    -- Dense from 0 after every write under the playlist's row lock; a track deleted from the
    -- library leaves a gap until the next write, which readers never see (they order by it).
    position    integer NOT NULL CHECK (position >= 0),
    added_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    added_at    timestamptz NOT NULL,
    -- Deferred, so a renumbering statement may pass through duplicates within itself.
    CONSTRAINT playlist_entries_position_key UNIQUE (playlist_id, position)
        DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX playlist_entries_track_idx ON playlist_entries (track_id);

CREATE TABLE shares (
    id            uuid PRIMARY KEY,
    owner_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_type   text NOT NULL CHECK (object_type IN ('track', 'playlist')),
    track_id      uuid REFERENCES tracks (id) ON DELETE CASCADE,
    playlist_id   uuid REFERENCES playlists (id) ON DELETE CASCADE,
    -- NULL while pending: shared with an address that has no (verified) account yet.
    grantee_id    uuid REFERENCES users (id) ON DELETE CASCADE,
    grantee_email text,
    permission    text NOT NULL,
    version       bigint NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    revoked_at    timestamptz,
    CONSTRAINT shares_object_check CHECK (
        (object_type = 'track' AND track_id IS NOT NULL AND playlist_id IS NULL)
        OR (object_type = 'playlist' AND playlist_id IS NOT NULL AND track_id IS NULL)),
    CONSTRAINT shares_permission_check CHECK (
        (object_type = 'track' AND permission IN ('view', 'stream', 'download'))
        OR (object_type = 'playlist' AND permission IN ('view', 'edit'))),
    CONSTRAINT shares_grantee_check CHECK (grantee_id IS NOT NULL OR grantee_email IS NOT NULL),
    CONSTRAINT shares_email_lower_check CHECK (grantee_email = lower(grantee_email))
);
-- One live share per object and grantee (a second POST changes its permission).
CREATE UNIQUE INDEX shares_track_grantee_key ON shares (track_id, grantee_id)
    WHERE revoked_at IS NULL AND grantee_id IS NOT NULL;
CREATE UNIQUE INDEX shares_playlist_grantee_key ON shares (playlist_id, grantee_id)
    WHERE revoked_at IS NULL AND grantee_id IS NOT NULL;
CREATE UNIQUE INDEX shares_track_pending_key ON shares (track_id, grantee_email)
    WHERE revoked_at IS NULL AND grantee_id IS NULL;
CREATE UNIQUE INDEX shares_playlist_pending_key ON shares (playlist_id, grantee_email)
    WHERE revoked_at IS NULL AND grantee_id IS NULL;
CREATE INDEX shares_grantee_idx ON shares (grantee_id, created_at, id) WHERE revoked_at IS NULL;
CREATE INDEX shares_owner_idx ON shares (owner_id, created_at, id) WHERE revoked_at IS NULL;
CREATE INDEX shares_pending_email_idx ON shares (grantee_email)
    WHERE revoked_at IS NULL AND grantee_id IS NULL;

CREATE TABLE pitches (
    id               uuid PRIMARY KEY,
    owner_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The playlist it was made from; the pitch keeps its own frozen track list.
    playlist_id      uuid REFERENCES playlists (id) ON DELETE SET NULL,
    title            text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    message          text NOT NULL DEFAULT '' CHECK (char_length(message) <= 5000),
    allow_download   boolean NOT NULL,
    password_hash    text,
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    -- Set once the expiry sweeper has emitted pitch_expired.
    expiry_noted_at  timestamptz,
    version          bigint NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE INDEX pitches_owner_idx ON pitches (owner_id, created_at, id);
CREATE INDEX pitches_expiry_idx ON pitches (expires_at)
    WHERE expiry_noted_at IS NULL AND revoked_at IS NULL;

CREATE TABLE pitch_tracks (
    pitch_id  uuid NOT NULL REFERENCES pitches (id) ON DELETE CASCADE,
    track_id  uuid NOT NULL REFERENCES tracks (id) ON DELETE CASCADE,
    position  integer NOT NULL,
    PRIMARY KEY (pitch_id, track_id),
    CONSTRAINT pitch_tracks_position_key UNIQUE (pitch_id, position)
);
CREATE INDEX pitch_tracks_track_idx ON pitch_tracks (track_id);

CREATE TABLE pitch_recipients (
    id              uuid PRIMARY KEY,
    pitch_id        uuid NOT NULL REFERENCES pitches (id) ON DELETE CASCADE,
    name            text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    email           text NOT NULL CHECK (email = lower(email)),
    company         text CHECK (char_length(company) <= 200),
    -- SHA-256 of the link's token: the token itself is shown once and never stored.
    token_hash      bytea NOT NULL CHECK (octet_length(token_hash) = 32),
    link_issued_at  timestamptz NOT NULL,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL,
    CONSTRAINT pitch_recipients_token_key UNIQUE (token_hash)
);
CREATE INDEX pitch_recipients_pitch_idx ON pitch_recipients (pitch_id, created_at, id);
CREATE UNIQUE INDEX pitch_recipients_email_key ON pitch_recipients (pitch_id, email)
    WHERE revoked_at IS NULL;

-- What recipients did. One row per usage event (same id), so the engagement read model and the
-- lake are fed by one record, and a retried report is recorded once.
CREATE TABLE pitch_interactions (
    event_id      uuid PRIMARY KEY,
    pitch_id      uuid NOT NULL REFERENCES pitches (id) ON DELETE CASCADE,
    recipient_id  uuid NOT NULL REFERENCES pitch_recipients (id) ON DELETE CASCADE,
    track_id      uuid,
    event_type    text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    position_ms   bigint,
    listened_ms   bigint,
    bytes         bigint
);
CREATE INDEX pitch_interactions_pitch_idx ON pitch_interactions (pitch_id, recipient_id);

-- The recipient's current word on each track (the interactions keep the history).
CREATE TABLE pitch_feedback (
    recipient_id  uuid NOT NULL REFERENCES pitch_recipients (id) ON DELETE CASCADE,
    track_id      uuid NOT NULL,
    shortlisted   boolean NOT NULL DEFAULT false,
    comment       text CHECK (char_length(comment) <= 2000),
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (recipient_id, track_id)
);
