-- One generation of the `connections` read model: each person's platform connections and the
-- platform ids they name. It holds no token, sealed or not.
CREATE TABLE connections{g}
(
    connection_id TEXT NOT NULL PRIMARY KEY,
    person_id     TEXT NOT NULL,
    platform      TEXT NOT NULL,
    status        TEXT NOT NULL,
    external_id   TEXT NOT NULL,
    display_name  TEXT,
    connected_at  TEXT NOT NULL,
    ended_at      TEXT
);
CREATE INDEX connections{g}_person ON connections{g} (person_id);
