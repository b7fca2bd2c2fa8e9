//! The Chrome extension's lookup (P8): `GET /v1/extension/spotify/tracks/{id}` and
//! `/albums/{id}` (see `app::extension`): 429 with Retry-After beyond the per-person allowance.

use super::{finish, json, Ctx};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

pub fn routes(
    ctx: impl Filter<Extract = (Ctx,), Error = Rejection> + Clone + Send + Sync + 'static,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::path!("v1" / "extension" / "spotify" / String / String)
        .and(warp::get())
        .and(ctx)
        .then(|kind: String, id: String, ctx: Ctx| async move {
            let result = async {
                let caller = ctx.caller()?;
                let answer = app::extension::lookup(ctx.app(), &caller, &kind, &id).await?;
                json(StatusCode::OK, &answer)
            }
            .await;
            finish(&ctx.request_id, result)
        })
}
