-- What search filters and facets on beyond the tags read from the file: editable by the owner.
-- Plain PostgreSQL 15+.
-- depends: 0003.playlists-shares-pitches

ALTER TABLE tracks ADD COLUMN mood text CHECK (char_length(mood) <= 100);
ALTER TABLE tracks ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE tracks ADD COLUMN instrumental boolean;
