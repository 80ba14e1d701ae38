//! `GET /openapi.json`: the OpenAPI 3 document, generated from the handlers' annotations and the
//! request/response types, so it describes what the server really does. A test checks that
//! every documented operation is routed.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audio, auth, feeds, health, posts, social, users};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sidechain API",
        description = "The client API of Sidechain, the social network for music producers. \
            Every error is `{\"error\":\"<code>\",\"message\":\"...\",\"request_id\":\"...\"}`; \
            429 and 503 carry `Retry-After`; every response carries `X-Request-ID` and the \
            `RateLimit-*` headers of its route class. Writes answer 2xx only once stored.",
    ),
    paths(
        health::health, health::gorse, health::live, health::ready, openapi_json,
        auth::register, auth::login, auth::refresh, auth::me, auth::logout, auth::logout_all,
        auth::change_password,
        posts::create, posts::delete, posts::play, posts::view, posts::download,
        posts::download_as_get, posts::repost, posts::unrepost, posts::comment, posts::comments,
        social::like, social::unlike, social::feed_like, social::feed_unlike, social::react,
        social::play, social::listen_duration, social::recommendation_click, social::follow,
        social::unfollow, social::follow_user, social::unfollow_user,
        feeds::timeline, feeds::unified, feeds::trending, feeds::for_you, feeds::discovery,
        feeds::user_posts,
        users::me, users::update_me, users::change_username, users::profile, users::followers,
        users::following,
        audio::upload, audio::serve, audio::waveform, audio::waveform_svg, audio::status,
    ),
    components(schemas(super::error::ErrorBody)),
    modifiers(&BearerAuth, &CommonErrors),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "posts", description = "Sharing and deleting loops"),
        (name = "interactions", description = "Likes, plays, views, downloads, reposts, comments"),
        (name = "social", description = "Follows"),
        (name = "feeds", description = "Feeds, answered by the cache service"),
        (name = "users", description = "Who am I, profiles, followers and following, profile edits"),
        (name = "audio", description = "Uploading loops and fetching stored audio and waveforms"),
        (name = "health", description = "Health"),
    )
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The errors every API operation can answer, added where a handler's annotation does not
/// list them: 400 (bad input), 401 (token), 413/415 (bodies), 429 (rate limit), 503
/// (dependency down), all in the `ErrorBody` shape.
struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, ResponseBuilder, content::ContentBuilder};
        let error = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build(),
            )
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/api/") {
                continue;
            }
            let public = path.ends_with("/register") || path.ends_with("/login");
            let operations = [
                item.get.as_mut(),
                item.post.as_mut(),
                item.put.as_mut(),
                item.delete.as_mut(),
                item.patch.as_mut(),
            ];
            for operation in operations.into_iter().flatten() {
                let has_body = operation.request_body.is_some();
                let responses = &mut operation.responses.responses;
                let mut add = |status: &str, description: &str| {
                    responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error(description));
                };
                add("400", "Invalid input");
                if !public {
                    add("401", "Missing, invalid, expired or revoked token");
                }
                if has_body {
                    add("413", "Body larger than MAX_BODY_BYTES");
                    add("415", "Body is not JSON");
                }
                add("429", "Rate limited; see Retry-After");
                add("503", "A dependency is unavailable; see Retry-After");
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3 document", content_type = "application/json")))]
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
