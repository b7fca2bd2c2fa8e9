//! The Chrome extension's lookup (P8): public catalog data (popularity, label, release date)
//! of a Spotify track or album, for a signed-in person. Rate-limited per person, cached
//! briefly; nothing personal is stored or logged.

/// A Spotify id: 22 base62 characters.
pub fn is_spotify_id(id: &str) -> bool {
    id.len() == 22 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}
