-- One generation of the `connections` read model: each person's platform connections and the
-- platform ids they name. It holds no token, sealed or not.
CREATE TABLE connections{g}
(
    connection_id text NOT NULL PRIMARY KEY,
    person_id     text NOT NULL,
    platform      text NOT NULL,
    status        text NOT NULL,
    external_id   text NOT NULL,
    display_name  text,
    connected_at  text NOT NULL,
    ended_at      text
);
CREATE INDEX connections{g}_person ON connections{g} (person_id);
