-- One generation of the `artist_access` read model: who may do what on which artist (P16),
-- and the artists themselves. Invitations are read from the artist's stream.
CREATE TABLE artist_access{g}
(
    artist_id text NOT NULL,
    person_id text NOT NULL,
    role      text NOT NULL,
    PRIMARY KEY (artist_id, person_id)
);
CREATE INDEX artist_access{g}_person ON artist_access{g} (person_id);
CREATE TABLE artists{g}
(
    artist_id         text NOT NULL PRIMARY KEY,
    name              text NOT NULL,
    spotify_artist_id text,
    owner             text NOT NULL
);
