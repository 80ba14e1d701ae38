//! Posts and what users do with them: create, delete, play, view, download, repost, comment.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use sidechain_events::events::{
    Comment, Download, Play, PostCreated, PostDeleted, Repost, Unrepost, View, event::Payload,
};
use sidechain_events::rpc::{CommentItem, FeedItem, ItemSource, Post};
use sidechain_events::{CommentId, EventKind, PostId};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, PageQuery, Validate};
use super::lookup::existing_post;
use super::validate;
use super::views::{
    ActionResponse, CommentView, CommentsResponse, DownloadMetadata, DownloadResponse, PageMeta,
    PostView, bpm_of, filename_of,
};
use crate::events::IdempotencyKey;
use crate::state::AppState;

/// `POST /api/v1/feed/post`: a loop shared from the plugin.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CreatePostRequest {
    /// At most 200 characters.
    #[schema(max_length = 200)]
    pub title: Option<String>,
    /// http(s) URL of the audio.
    #[schema(max_length = 2048, pattern = r"^https?://")]
    pub audio_url: String,
    /// http(s) URL of the waveform image.
    #[schema(max_length = 2048, pattern = r"^https?://")]
    pub waveform_url: Option<String>,
    /// Tempo, greater than 0 and at most 400.
    #[schema(exclusive_minimum = 0.0, maximum = 400.0)]
    pub bpm: f64,
    /// Musical key, e.g. `C minor` (1–32 characters).
    #[schema(min_length = 1, max_length = 32)]
    pub key: String,
    /// 1–5 genres of 1–32 characters; stored lower-case.
    #[schema(min_items = 1, max_items = 5)]
    pub genres: Vec<String>,
    /// Length in seconds, greater than 0 and at most 3600.
    #[schema(exclusive_minimum = 0.0, maximum = 3600.0)]
    pub duration_seconds: f64,
    /// The DAW it came from (at most 64 characters).
    #[schema(max_length = 64)]
    pub daw: Option<String>,
    /// The loop's file name (at most 255 characters, no path): the name a DAW shows when the
    /// loop is dropped in. Without it one is made up from the author, id and tempo.
    #[schema(max_length = 255)]
    pub filename: Option<String>,
}

impl Validate for CreatePostRequest {
    fn validate(&self) -> Result<(), ApiError> {
        if let Some(title) = &self.title {
            validate::length("title", title, 0, 200)?;
        }
        validate::url("audio_url", &self.audio_url)?;
        if let Some(waveform) = &self.waveform_url {
            validate::url("waveform_url", waveform)?;
        }
        validate::range("bpm", self.bpm, 0.0, 400.0, true)?;
        validate::length("key", &self.key, 1, 32)?;
        if !(1..=5).contains(&self.genres.len()) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "genres must hold 1 to 5 genres",
            ));
        }
        for genre in &self.genres {
            validate::length("genres[]", genre, 1, 32)?;
        }
        validate::range("duration_seconds", self.duration_seconds, 0.0, 3600.0, true)?;
        if let Some(daw) = &self.daw {
            validate::length("daw", daw, 0, 64)?;
        }
        if let Some(filename) = &self.filename {
            validate::length("filename", filename, 0, 255)?;
            validate::plain_text("filename", filename)?;
            if filename.contains(['/', '\\']) {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "filename must be a file name, not a path",
                ));
            }
        }
        Ok(())
    }
}

/// Lower-cased, trimmed, without repeats, in the order given.
fn normalise_genres(genres: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(genres.len());
    for genre in genres {
        let genre = genre.trim().to_lowercase();
        if !out.contains(&genre) {
            out.push(genre);
        }
    }
    out
}

/// Shares a loop.
#[utoipa::path(post, path = "/api/v1/feed/post", tag = "posts",
    security(("bearer" = [])),
    request_body = CreatePostRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key creates the post once")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), 
        (status = 201, description = "Stored", body = PostView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Rate limited (upload class)", body = ErrorBody),
        (status = 503, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiJson(body): ApiJson<CreatePostRequest>,
) -> Result<(StatusCode, Json<PostView>), ApiError> {
    state.media_urls.check("audio_url", &body.audio_url)?;
    if let Some(waveform) = &body.waveform_url {
        state.media_urls.check("waveform_url", waveform)?;
    }
    let author = user.session.user_id;
    let post_id = PostId::from_uuid(key.entity_id(author, EventKind::PostCreated, "post"));
    let genres = normalise_genres(&body.genres);
    let created = PostCreated {
        post_id: post_id.to_string(),
        title: body.title.unwrap_or_default().trim().to_owned(),
        audio_url: body.audio_url,
        waveform_url: body.waveform_url.unwrap_or_default(),
        bpm: body.bpm,
        key: body.key.trim().to_owned(),
        genres,
        duration_seconds: body.duration_seconds,
        daw: body.daw.unwrap_or_default().trim().to_owned(),
        filename: body.filename.unwrap_or_default().trim().to_owned(),
    };
    state
        .record(&user.session, &key, Payload::PostCreated(created.clone()))
        .await?;
    state.cache.remember_post(post_id, Some(author)).await;
    let view = PostView::from(FeedItem {
        post: Some(Post {
            id: created.post_id,
            user_id: author.to_string(),
            username: user.session.username.clone(),
            title: created.title,
            audio_url: created.audio_url,
            waveform_url: created.waveform_url,
            bpm: created.bpm,
            key: created.key,
            genres: created.genres,
            duration_seconds: created.duration_seconds,
            daw: created.daw,
            created_at_ms: sidechain_events::now_ms(),
            filename: created.filename,
        }),
        source: ItemSource::Recent as i32,
        author_avatar_url: super::users::avatar_of(&state, author).await,
        is_own_post: true,
        ..FeedItem::default()
    });
    Ok((StatusCode::CREATED, Json(view)))
}

/// Deletes one of the caller's posts.
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), 
        (status = 200, description = "Deleted", body = ActionResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "Not the author", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Json<ActionResponse>, ApiError> {
    let owner = existing_post(&state, post_id).await?;
    if owner.0 != user.session.user_id {
        return Err(ApiError::Forbidden(
            "only the author can delete a post".into(),
        ));
    }
    let payload = Payload::PostDeleted(PostDeleted {
        post_id: post_id.to_string(),
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    state.cache.remember_post(post_id, None).await;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// `POST /api/v1/posts/{id}/play`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlayRequest {
    /// Seconds listened, 0–86400.
    #[schema(minimum = 0.0, maximum = 86400.0)]
    pub duration: f64,
    /// Whether the loop was played to the end.
    #[serde(default)]
    pub completed: bool,
}

impl Validate for PlayRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::range("duration", self.duration, 0.0, 86_400.0, false)
    }
}

/// Records a listen.
#[utoipa::path(post, path = "/api/v1/posts/{id}/play", tag = "interactions",
    security(("bearer" = [])),
    request_body = PlayRequest,
    params(("id" = String, Path, description = "Post id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), 
        (status = 200, description = "Stored", body = ActionResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn play(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
    ApiJson(body): ApiJson<PlayRequest>,
) -> Result<Json<ActionResponse>, ApiError> {
    existing_post(&state, post_id).await?;
    let payload = Payload::Play(Play {
        post_id: post_id.to_string(),
        duration_seconds: body.duration,
        completed: body.completed,
    });
    let recorded = state.record(&user.session, &key, payload).await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// The bodyless interactions on a post.
#[derive(Debug, Clone, Copy)]
enum Touch {
    View,
    Download,
    Repost,
    Unrepost,
}

impl Touch {
    fn payload(self, post_id: PostId) -> Payload {
        let post_id = post_id.to_string();
        match self {
            Touch::View => Payload::View(View { post_id }),
            Touch::Download => Payload::Download(Download { post_id }),
            Touch::Repost => Payload::Repost(Repost { post_id }),
            Touch::Unrepost => Payload::Unrepost(Unrepost { post_id }),
        }
    }
}

async fn touch(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    post_id: PostId,
    touch: Touch,
) -> Result<Json<ActionResponse>, ApiError> {
    existing_post(state, post_id).await?;
    let recorded = state
        .record(&user.session, key, touch.payload(post_id))
        .await?;
    Ok(Json(ActionResponse::new(recorded, post_id)))
}

/// Records that the post was seen.
#[utoipa::path(post, path = "/api/v1/posts/{id}/view", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = ActionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn view(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Json<ActionResponse>, ApiError> {
    touch(&state, &user, &key, post_id, Touch::View).await
}

/// Records a download of the loop and says where to fetch it. The plugin's bodiless POST
/// reaches the server as a GET (JUCE sends a request without a body as GET), so GET does the
/// same.
#[utoipa::path(post, path = "/api/v1/posts/{id}/download", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries store one event")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = DownloadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn download(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Json<DownloadResponse>, ApiError> {
    let detail = state
        .cache
        .post_detail(post_id, None)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("post {post_id} does not exist")))?;
    let recorded = state
        .record(&user.session, &key, Touch::Download.payload(post_id))
        .await?;
    let post = detail.post;
    Ok(Json(DownloadResponse {
        action: ActionResponse::new(recorded, post_id),
        filename: filename_of(&post),
        // The count read before this download was applied, plus this one.
        download_count: detail.counts.downloads + 1,
        metadata: DownloadMetadata {
            bpm: bpm_of(post.bpm),
            key: post.key,
            duration: post.duration_seconds,
            genre: post.genres.first().cloned(),
            daw: Some(post.daw).filter(|d| !d.is_empty()),
        },
        download_url: post.audio_url,
    }))
}

/// The plugin's download as it arrives: `GET` (see [`download`]).
#[utoipa::path(get, path = "/api/v1/posts/{id}/download", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses((status = 200, body = DownloadResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn download_as_get(
    state: State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    path: ApiPath<PostId>,
) -> Result<Json<DownloadResponse>, ApiError> {
    download(state, user, key, path).await
}

/// Reposts the post to the caller's followers.
#[utoipa::path(post, path = "/api/v1/posts/{id}/repost", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = ActionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn repost(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Json<ActionResponse>, ApiError> {
    touch(&state, &user, &key, post_id, Touch::Repost).await
}

/// Takes a repost back.
#[utoipa::path(delete, path = "/api/v1/posts/{id}/repost", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), (status = 200, body = ActionResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn unrepost(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Json<ActionResponse>, ApiError> {
    touch(&state, &user, &key, post_id, Touch::Unrepost).await
}

/// `POST /api/v1/posts/{id}/comments`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CommentRequest {
    /// 1–2000 characters (not only spaces).
    #[schema(min_length = 1, max_length = 2000)]
    pub content: String,
    /// The comment this answers (must be on the same post).
    #[schema(value_type = Option<String>, format = Uuid)]
    pub parent_id: Option<CommentId>,
}

impl Validate for CommentRequest {
    fn validate(&self) -> Result<(), ApiError> {
        validate::length("content", &self.content, 1, 2000)
    }
}

/// Comments on a post.
#[utoipa::path(post, path = "/api/v1/posts/{id}/comments", tag = "interactions",
    security(("bearer" = [])),
    request_body = CommentRequest,
    params(("id" = String, Path, description = "Post id (UUID)"),
        ("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key comments once")),
    responses((status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody), 
        (status = 201, description = "Stored", body = CommentView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, description = "No such post or parent comment", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn comment(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    ApiPath(post_id): ApiPath<PostId>,
    ApiJson(body): ApiJson<CommentRequest>,
) -> Result<(StatusCode, Json<CommentView>), ApiError> {
    existing_post(&state, post_id).await?;
    if let Some(parent) = body.parent_id {
        let location = state.cache.comment_location(parent).await?;
        if location.map(|l| l.post_id) != Some(post_id) {
            return Err(ApiError::NotFound(format!(
                "comment {parent} is not on post {post_id}"
            )));
        }
    }
    let actor = user.session.user_id;
    let comment_id = CommentId::from_uuid(key.entity_id(actor, EventKind::Comment, "comment"));
    let content = body.content.trim().to_owned();
    let payload = Payload::Comment(Comment {
        comment_id: comment_id.to_string(),
        post_id: post_id.to_string(),
        content: content.clone(),
        parent_id: body.parent_id.map(|p| p.to_string()).unwrap_or_default(),
    });
    state.record(&user.session, &key, payload).await?;
    let item = CommentItem {
        id: comment_id.to_string(),
        post_id: post_id.to_string(),
        user_id: actor.to_string(),
        username: user.session.username.clone(),
        content,
        parent_id: body.parent_id.map(|p| p.to_string()).unwrap_or_default(),
        created_at_ms: sidechain_events::now_ms(),
        user_avatar_url: super::users::avatar_of(&state, actor).await,
    };
    Ok((StatusCode::CREATED, Json(CommentView::seen_by(item, actor))))
}

/// A page of a post's comments, oldest first.
#[utoipa::path(get, path = "/api/v1/posts/{id}/comments", tag = "interactions",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id (UUID)"), PageQuery),
    responses((status = 200, body = CommentsResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn comments(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    ApiPath(post_id): ApiPath<PostId>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Json<CommentsResponse>, ApiError> {
    let page = query.page()?;
    existing_post(&state, post_id).await?;
    let reply = state.cache.comments(post_id, page).await?;
    let viewer = user.session.user_id;
    let comments: Vec<CommentView> = reply
        .comments
        .into_iter()
        .map(|c| CommentView::seen_by(c, viewer))
        .collect();
    Ok(Json(CommentsResponse {
        meta: PageMeta {
            limit: page.limit,
            offset: page.offset,
            count: comments.len(),
            has_more: reply.has_more,
            next_cursor: None,
        },
        total_count: reply.total_count,
        has_more: reply.has_more,
        comments,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genres_are_normalised_in_order_without_repeats() {
        let genres = vec![
            " Techno".to_owned(),
            "house".to_owned(),
            "TECHNO".to_owned(),
        ];
        assert_eq!(normalise_genres(&genres), vec!["techno", "house"]);
    }
}
