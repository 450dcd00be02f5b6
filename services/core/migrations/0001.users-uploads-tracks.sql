-- Users, uploads and tracks. Plain PostgreSQL 15+ (runs unchanged on Aurora PostgreSQL 15/16).
-- depends:

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    issuer      text NOT NULL,
    subject     text NOT NULL,
    email       text,
    name        text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    CONSTRAINT users_issuer_subject_key UNIQUE (issuer, subject)
);
CREATE INDEX users_email_idx ON users (lower(email));

CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    owner_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    filename        text NOT NULL,
    content_type    text,
    declared_size   bigint NOT NULL CHECK (declared_size > 0),
    object_key      text NOT NULL UNIQUE,
    -- S3 multipart upload id, when the bytes go up in parts.
    multipart_id    text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'completed', 'rejected')),
    rejection_code  text,
    track_id        uuid,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    finished_at     timestamptz
);
CREATE INDEX uploads_owner_idx ON uploads (owner_id, created_at DESC);
CREATE INDEX uploads_pending_expiry_idx ON uploads (expires_at) WHERE status = 'pending';

CREATE TABLE tracks (
    id                uuid PRIMARY KEY,
    owner_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_key        text NOT NULL UNIQUE,
    original_filename text NOT NULL,
    title             text NOT NULL,
    artists           text[] NOT NULL DEFAULT '{}',
    album             text,
    year              integer,
    genre             text,
    isrc              text,
    bpm               numeric(6, 2),
    musical_key       text,
    duration_ms       integer NOT NULL CHECK (duration_ms > 0),
    bitrate           integer,
    sample_rate       integer,
    channels          smallint,
    container         text NOT NULL,
    codec             text NOT NULL,
    content_type      text NOT NULL,
    file_extension    text NOT NULL,
    size_bytes        bigint NOT NULL,
    sha256            text NOT NULL,
    -- Bumped on every change; the search indexer uses it as the external version.
    version           bigint NOT NULL DEFAULT 1,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    CONSTRAINT tracks_owner_sha256_key UNIQUE (owner_id, sha256)
);
ALTER TABLE uploads ADD CONSTRAINT uploads_track_fk
    FOREIGN KEY (track_id) REFERENCES tracks (id) ON DELETE SET NULL;
-- Keyset pagination: one index per sort key, each ending in id for a total order.
CREATE INDEX tracks_owner_created_idx  ON tracks (owner_id, created_at, id);
CREATE INDEX tracks_owner_title_idx    ON tracks (owner_id, lower(title), id);
CREATE INDEX tracks_owner_duration_idx ON tracks (owner_id, duration_ms, id);
CREATE INDEX tracks_artists_idx        ON tracks USING gin (artists);
