//! Feeds, answered by the cache service over NATS request/reply.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use sidechain_events::UserId;
use sidechain_events::rpc::FeedKind;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, ApiQuery, AuthUser, CursorQuery, MaybeAuthUser, PageQuery};
use super::lookup::existing_user;
use super::views::FeedResponse;
use crate::state::AppState;

async fn feed(
    state: &AppState,
    kind: FeedKind,
    viewer: Option<UserId>,
    target: Option<UserId>,
    query: PageQuery,
) -> Result<Json<FeedResponse>, ApiError> {
    let page = query.page()?;
    let result = state.cache.feed(kind, viewer, target, page, None).await?;
    Ok(Json(FeedResponse::from_page(result, page)))
}

/// A time-ordered feed: by `cursor` when given, else by `limit`/`offset`.
async fn feed_by_cursor(
    state: &AppState,
    kind: FeedKind,
    viewer: Option<UserId>,
    target: Option<UserId>,
    query: CursorQuery,
) -> Result<FeedResponse, ApiError> {
    let (page, cursor) = query.page()?;
    let result = state
        .cache
        .feed(kind, viewer, target, page, cursor.as_deref())
        .await?;
    let total = result.total;
    let response = FeedResponse::from_page(result, page);
    Ok(match kind {
        FeedKind::User => response.with_totals(total),
        _ => response,
    })
}

/// Posts of the users the caller follows, newest first.
#[utoipa::path(get, path = "/api/v1/feed/timeline", tag = "feeds",
    security(("bearer" = [])), params(CursorQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, description = "Feed service unavailable", body = ErrorBody)))]
pub async fn timeline(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<CursorQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    feed_by_cursor(
        &state,
        FeedKind::Timeline,
        Some(user.session.user_id),
        None,
        query,
    )
    .await
    .map(Json)
}

/// Following, recommendations, trending and recent posts mixed (see docs/feeds.md).
#[utoipa::path(get, path = "/api/v1/feed/unified", tag = "feeds",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unified(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    feed(
        &state,
        FeedKind::Unified,
        Some(user.session.user_id),
        None,
        query,
    )
    .await
}

/// Posts with the most engagement recently. Signed-in callers get `is_following`.
#[utoipa::path(get, path = "/api/v1/feed/trending", tag = "feeds",
    security((), ("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn trending(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(user): MaybeAuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    let viewer = user.map(|u| u.session.user_id);
    feed(&state, FeedKind::Trending, viewer, None, query).await
}

/// Recommendations for the caller (Gorse), or trending while Gorse is unavailable.
#[utoipa::path(get, path = "/api/v1/recommendations/for-you", tag = "feeds",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn for_you(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    feed(
        &state,
        FeedKind::ForYou,
        Some(user.session.user_id),
        None,
        query,
    )
    .await
}

/// What the plugin's discovery tab shows: the For-You feed (Gorse, trending while Gorse is
/// unavailable) until a separate discovery mix exists.
#[utoipa::path(get, path = "/api/v1/feed/discovery", tag = "feeds",
    security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn discovery(
    state: State<Arc<AppState>>,
    user: AuthUser,
    query: ApiQuery<PageQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    for_you(state, user, query).await
}

/// A user's posts, newest first, with top-level `total` and `has_more` (what the plugin's
/// profile reads).
#[utoipa::path(get, path = "/api/v1/users/{id}/posts", tag = "feeds",
    security((), ("bearer" = [])),
    params(("id" = String, Path, description = "User id (UUID)"), CursorQuery),
    responses((status = 200, body = FeedResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn user_posts(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(user): MaybeAuthUser,
    ApiPath(target): ApiPath<UserId>,
    ApiQuery(query): ApiQuery<CursorQuery>,
) -> Result<Json<FeedResponse>, ApiError> {
    query.clone().page()?;
    existing_user(&state, target).await?;
    let viewer = user.map(|u| u.session.user_id);
    feed_by_cursor(&state, FeedKind::User, viewer, Some(target), query)
        .await
        .map(Json)
}
