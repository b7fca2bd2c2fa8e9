//! The Chrome extension's lookup (P8): `GET /v1/extension/spotify/tracks/{id}` and
//! `/albums/{id}` answer public catalog data (popularity, label, release date) for a
//! signed-in person. Ids are validated; each person has a per-minute allowance (429 with
//! Retry-After beyond it); answers are cached for five minutes; nothing personal is stored or
//! logged (the allowance counter lives in memory, keyed by the token's subject, and is
//! forgotten after its minute).

use super::{finish, json, Ctx};
use crate::auth::Role;
use crate::ApiError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

/// How long an answer is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// How many answers are kept at most.
pub const CACHE_CAPACITY: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

/// A Spotify id: 22 base62 characters.
pub fn is_spotify_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The per-person allowance and the answer cache. std `Mutex`, not tokio's: no `.await` is
/// ever held while locked.
#[derive(Clone)]
pub struct LookupGuard {
    per_minute: u32,
    windows: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    cache: Arc<Mutex<HashMap<String, (Instant, Value)>>>,
}

impl LookupGuard {
    pub fn new(per_minute: u32) -> LookupGuard {
        LookupGuard {
            per_minute,
            windows: Arc::default(),
            cache: Arc::default(),
        }
    }

    /// Counts one call of `person`; `Err(seconds)` when over the allowance.
    fn admit(&self, person: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().expect("never poisoned");
        windows.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
        let (start, count) = windows.entry(person.to_string()).or_insert((now, 0));
        if *count >= self.per_minute {
            let left = WINDOW.saturating_sub(now.duration_since(*start));
            return Err(left.as_secs().max(1));
        }
        *count += 1;
        Ok(())
    }

    fn cached(&self, key: &str) -> Option<Value> {
        let cache = self.cache.lock().expect("never poisoned");
        cache
            .get(key)
            .filter(|(at, _)| at.elapsed() < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    fn remember(&self, key: String, value: Value) {
        let mut cache = self.cache.lock().expect("never poisoned");
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), value));
    }
}

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path!("v1" / "extension" / "spotify" / String / String)
        .and(warp::get())
        .and(ctx)
        .then(
            |kind: String, id: String, ctx: Ctx| async move { finish(&ctx.request_id, lookup(&ctx, &kind, &id).await) },
        )
}

async fn lookup(ctx: &Ctx, kind: &str, id: &str) -> Result<Response, ApiError> {
    let caller = ctx.caller()?;
    caller.require(&[Role::Person])?;
    // Every call counts, malformed ones included: the allowance also bounds probing.
    let guard = &ctx.state.extension;
    guard.admit(&caller.subject).map_err(ApiError::RateLimited)?;
    if kind != "tracks" && kind != "albums" {
        return Err(ApiError::NotFound("look up `tracks/{id}` or `albums/{id}`".into()));
    }
    if !is_spotify_id(id) {
        return Err(ApiError::Validation("a Spotify id is 22 letters and digits".into()));
    }
    let key = format!("{kind}/{id}");
    if let Some(answer) = guard.cached(&key) {
        return json(StatusCode::OK, &answer);
    }
    let spotify = ctx.state.platforms.spotify.as_ref().ok_or_else(|| {
        ApiError::Upstream("the Spotify lookup is not configured (DYNAMOI_SPOTIFY_CLIENT_ID/SECRET)".into())
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
    json(StatusCode::OK, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spotify_ids_are_22_base62_characters() {
        assert!(is_spotify_id("4uLU6hMCjMI75M1A2tKUQC"));
        assert!(!is_spotify_id("4uLU6hMCjMI75M1A2tKUQ"));
        assert!(!is_spotify_id("4uLU6hMCjMI75M1A2tKU-C"));
    }

    #[test]
    fn the_allowance_refuses_past_the_limit_with_the_seconds_left() {
        let guard = LookupGuard::new(2);
        assert_eq!(guard.admit("p"), Ok(()));
        assert_eq!(guard.admit("p"), Ok(()));
        let refused = guard.admit("p").unwrap_err();
        assert!((1..=60).contains(&refused));
        assert_eq!(guard.admit("other"), Ok(()), "allowances are per person");
    }
}
