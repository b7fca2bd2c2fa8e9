-- One generation of the `artist_access` read model: who may do what on which artist (P16),
-- and the open invitations by token hash (never the token, never the email).
CREATE TABLE artist_access{g}
(
    artist_id TEXT NOT NULL,
    person_id TEXT NOT NULL,
    role      TEXT NOT NULL,
    PRIMARY KEY (artist_id, person_id)
);
CREATE INDEX artist_access{g}_person ON artist_access{g} (person_id);
CREATE TABLE artists{g}
(
    artist_id         TEXT NOT NULL PRIMARY KEY,
    name              TEXT NOT NULL,
    spotify_artist_id TEXT,
    owner             TEXT NOT NULL
);
CREATE TABLE invitations{g}
(
    invitation_id TEXT NOT NULL PRIMARY KEY,
    artist_id     TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_sha256  TEXT NOT NULL,
    status        TEXT NOT NULL,
    expires_at    TEXT NOT NULL,
    email_sent    BOOLEAN NOT NULL
);
CREATE INDEX invitations{g}_token ON invitations{g} (token_sha256);
