//! The Chrome extension's lookup (P8): public catalog data (popularity, label, release date)
//! of a Spotify track or album for a signed-in person. Ids are validated; each person has a
//! per-minute allowance; answers are cached for five minutes; nothing personal is stored or
//! logged (the allowance counter lives in memory, keyed by the caller's subject, and is
//! forgotten after its minute).

pub use crate::lookup_guard::{is_spotify_id, LookupGuard, CACHE_CAPACITY, CACHE_TTL};
use crate::{App, AppError, Caller, Role};
use serde_json::{json, Value};

/// The public catalog data of a Spotify track or album (`kind` is `tracks` or `albums`).
pub async fn lookup(app: &App, caller: &Caller, kind: &str, id: &str) -> Result<Value, AppError> {
    caller.require(&[Role::Person])?;
    // Every call counts, malformed ones included: the allowance also bounds probing.
    let guard = &app.extension;
    guard.admit(&caller.subject).map_err(AppError::RateLimited)?;
    if kind != "tracks" && kind != "albums" {
        return Err(AppError::NotFound("look up `tracks/{id}` or `albums/{id}`".into()));
    }
    if !is_spotify_id(id) {
        return Err(AppError::Validation("a Spotify id is 22 letters and digits".into()));
    }
    let key = format!("{kind}/{id}");
    if let Some(answer) = guard.cached(&key) {
        return Ok(answer);
    }
    let spotify = app.platforms.spotify.as_ref().ok_or_else(|| {
        AppError::Upstream("the Spotify lookup is not configured (DYNAMOI_SPOTIFY_CLIENT_ID/SECRET)".into())
    })?;
    let answer = if kind == "tracks" {
        let track = spotify.track(id).await?;
        json!({
            "kind": "track",
            "id": track.id,
            "name": track.name,
            "popularity": track.popularity,
            "label": track.album_label,
            "release_date": track.release_date,
        })
    } else {
        let album = spotify.album(id).await?;
        json!({
            "kind": "album",
            "id": album.id,
            "name": album.name,
            "popularity": album.popularity,
            "label": album.label,
            "release_date": album.release_date,
        })
    };
    guard.remember(key, answer.clone());
    Ok(answer)
}
