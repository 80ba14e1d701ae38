//! `GET /openapi.json`: the OpenAPI 3 document, generated from the handlers' annotations and the
//! request/response types, so it describes what the server really does. A test checks that
//! every documented operation is routed.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{auth, feeds, health, posts, social};

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
        health::health, health::gorse,
        auth::register, auth::login, auth::refresh, auth::me, auth::logout,
        posts::create, posts::delete, posts::play, posts::view, posts::download, posts::repost,
        posts::unrepost, posts::comment, posts::comments,
        social::like, social::unlike, social::follow, social::unfollow, social::follow_user,
        social::unfollow_user,
        feeds::timeline, feeds::unified, feeds::trending, feeds::for_you, feeds::user_posts,
    ),
    components(schemas(crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "posts", description = "Sharing and deleting loops"),
        (name = "interactions", description = "Likes, plays, views, downloads, reposts, comments"),
        (name = "social", description = "Follows"),
        (name = "feeds", description = "Feeds, answered by the cache service"),
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

/// Serves the document.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
