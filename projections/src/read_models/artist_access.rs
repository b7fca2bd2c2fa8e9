//! `artist_access`: every artist's members and roles (what each artist-scoped endpoint
//! checks, P16), and the artists themselves (`artists`). Invitations are read from the
//! artist's own stream, so no table holds them.

use crate::projection::{Projection, ProjectionError, ReadTx, Target};
use async_trait::async_trait;
use domain::artist::{ArtistEvent, ArtistProfile};
use domain::Aggregate;
use eventlog::{dispatch, Dialect, StoredEvent};

/// The projection that fills `artist_access` and `artists`.
pub struct ArtistAccess;

#[async_trait]
impl Projection for ArtistAccess {
    fn name(&self) -> &'static str {
        "artist_access"
    }

    fn version(&self) -> i32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["artist_access", "artists"]
    }

    fn aggregate_types(&self) -> Option<&'static [&'static str]> {
        Some(&[ArtistProfile::TYPE])
    }

    fn schema(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Postgres => include_str!("../../../migrations/read_models/postgres/artist_access.sql"),
            Dialect::Sqlite => include_str!("../../../migrations/read_models/sqlite/artist_access.sql"),
        }
    }

    async fn apply(&self, tx: &mut ReadTx<'_>, target: &Target, events: &[StoredEvent]) -> Result<(), ProjectionError> {
        let access = target.table("artist_access");
        let artists = target.table("artists");
        for event in events.iter().filter(|e| self.reads(e)) {
            let artist = &event.aggregate_id;
            let (sql, binds): (String, Vec<String>) = match event
                .decode::<ArtistEvent>()
                .map_err(|e| ProjectionError::undecodable(event, e))?
            {
                ArtistEvent::ArtistCreated {
                    owner,
                    name,
                    spotify_artist_id,
                } => {
                    let insert_artist = format!(
                        "INSERT INTO {artists} (artist_id, name, spotify_artist_id, owner) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (artist_id) DO NOTHING"
                    );
                    dispatch!(tx, ReadTx, |conn| {
                        sqlx::query(&insert_artist)
                            .bind(artist)
                            .bind(&name)
                            .bind(&spotify_artist_id)
                            .bind(&owner)
                            .execute(&mut **conn)
                            .await?;
                    });
                    (
                        format!(
                            "INSERT INTO {access} (artist_id, person_id, role) VALUES ($1, $2, $3) \
                             ON CONFLICT (artist_id, person_id) DO UPDATE SET role = excluded.role"
                        ),
                        vec![artist.clone(), owner, "admin".into()],
                    )
                }
                ArtistEvent::MemberInvited { .. }
                | ArtistEvent::InvitationEmailSent { .. }
                | ArtistEvent::InvitationRevoked { .. }
                | ArtistEvent::InvitationExpired { .. } => continue,
                ArtistEvent::InvitationAccepted { person_id, role, .. } => (
                    format!(
                        "INSERT INTO {access} (artist_id, person_id, role) VALUES ($1, $2, $3) \
                         ON CONFLICT (artist_id, person_id) DO UPDATE SET role = excluded.role"
                    ),
                    vec![artist.clone(), person_id, role.as_str().into()],
                ),
                ArtistEvent::MemberRemoved { person_id } => (
                    format!("DELETE FROM {access} WHERE artist_id = $1 AND person_id = $2"),
                    vec![artist.clone(), person_id],
                ),
            };
            dispatch!(tx, ReadTx, |conn| {
                let mut query = sqlx::query(&sql);
                for bind in &binds {
                    query = query.bind(bind);
                }
                query.execute(&mut **conn).await?;
            });
        }
        Ok(())
    }
}

// ----- Queries -----

/// The role (as stored: `owner`, `admin`, …) `person` holds on `artist`, if any.
pub async fn role_of(db: &eventlog::Db, artist: &str, person: &str) -> Result<Option<String>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT role FROM artist_access WHERE artist_id = $1 AND person_id = $2";
    let role: Option<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql)
            .bind(artist)
            .bind(person)
            .fetch_optional(pool)
            .await?
    });
    Ok(role.map(|(r,)| r))
}

/// An artist's profile as the read model holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArtistRow {
    pub name: String,
    pub spotify_artist_id: Option<String>,
    pub owner: String,
}

/// The artist `artist`, if it exists.
pub async fn artist(db: &eventlog::Db, artist: &str) -> Result<Option<ArtistRow>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT name, spotify_artist_id, owner FROM artists WHERE artist_id = $1";
    let row: Option<(String, Option<String>, String)> = dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(artist).fetch_optional(pool).await?
    });
    Ok(row.map(|(name, spotify_artist_id, owner)| ArtistRow {
        name,
        spotify_artist_id,
        owner,
    }))
}

/// The members of `artist` with their roles, by person id.
pub async fn members(db: &eventlog::Db, artist: &str) -> Result<Vec<(String, String)>, ProjectionError> {
    use eventlog::Db;
    let sql = "SELECT person_id, role FROM artist_access WHERE artist_id = $1 ORDER BY person_id";
    Ok(dispatch!(db, Db, |pool| {
        sqlx::query_as(sql).bind(artist).fetch_all(pool).await?
    }))
}

/// Every artist id.
pub async fn artist_ids(db: &eventlog::Db) -> Result<Vec<String>, ProjectionError> {
    use eventlog::Db;
    let ids: Vec<(String,)> = dispatch!(db, Db, |pool| {
        sqlx::query_as("SELECT artist_id FROM artists ORDER BY artist_id")
            .fetch_all(pool)
            .await?
    });
    Ok(ids.into_iter().map(|(id,)| id).collect())
}
