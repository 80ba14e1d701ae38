//! The client API: routes (one module per resource) and the layers around them.
//!
//! Order of work for a request: catch panics → `observe` (request id, span, timeout, access
//! log, metrics) → `authenticate` (verify a bearer token if sent) → routing → `record_route` →
//! the route class's rate limit → the handler.

pub mod audio;
pub mod auth;
pub mod cors;
pub mod error;
pub mod extract;
pub mod feeds;
pub mod health;
pub mod limits;
pub mod lookup;
pub mod observe;
pub mod openapi;
pub mod posts;
pub mod request_id;
pub mod social;
pub mod users;
pub mod validate;
pub mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use tower::util::option_layer;
use tower_http::set_header::SetResponseHeaderLayer;

use self::error::ApiError;
use crate::rate_limit::Class;
use crate::state::AppState;

/// Builds the API router; pages from `cors_origins` may call it from browsers.
pub fn router(
    state: Arc<AppState>,
    observe: Arc<observe::Observe>,
    cors_origins: &[String],
) -> Router {
    let limited = |routes: Router<Arc<AppState>>, class: Class| {
        routes.route_layer(from_fn_with_state((state.clone(), class), limits::limit))
    };

    let auth_class = Router::new()
        .route("/api/v1/auth/register", post(auth::register))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh));

    // The upload's body may be AUDIO_MAX_BYTES plus the multipart parts; the file part is
    // checked against AUDIO_MAX_BYTES itself while it is spooled.
    let upload_body_limit = usize::try_from(
        state
            .audio
            .config()
            .max_bytes
            .saturating_add(audio::MULTIPART_OVERHEAD),
    )
    .unwrap_or(usize::MAX);
    let upload_class = Router::new()
        .route("/api/v1/feed/post", post(posts::create))
        .route(
            "/api/v1/audio/upload",
            post(audio::upload).layer(DefaultBodyLimit::max(upload_body_limit)),
        );

    let default_class = Router::new()
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/logout-all", post(auth::logout_all))
        // PUT as documented; POST too, which is what JUCE sends for a PUT with a body.
        .route(
            "/api/v1/auth/password",
            put(auth::change_password).post(auth::change_password),
        )
        .route("/api/v1/posts/{id}", axum::routing::delete(posts::delete))
        .route("/api/v1/posts/{id}/play", post(posts::play))
        .route("/api/v1/posts/{id}/view", post(posts::view))
        // GET too: JUCE sends the plugin's bodiless POST as a GET.
        .route(
            "/api/v1/posts/{id}/download",
            post(posts::download).get(posts::download_as_get),
        )
        .route(
            "/api/v1/posts/{id}/repost",
            post(posts::repost).delete(posts::unrepost),
        )
        .route(
            "/api/v1/posts/{id}/comments",
            post(posts::comment).get(posts::comments),
        )
        .route(
            "/api/v1/social/like",
            post(social::like).delete(social::unlike),
        )
        .route("/api/v1/feed/like", post(social::feed_like))
        .route("/api/v1/feed/unlike", post(social::feed_unlike))
        .route("/api/v1/social/react", post(social::react))
        .route("/api/v1/social/play", post(social::play))
        .route(
            "/api/v1/social/listen-duration",
            post(social::listen_duration),
        )
        .route(
            "/api/v1/recommendations/click",
            post(social::recommendation_click),
        )
        .route("/api/v1/social/follow", post(social::follow))
        .route("/api/v1/social/unfollow", post(social::unfollow))
        .route(
            "/api/v1/users/{id}/follow",
            post(social::follow_user).delete(social::unfollow_user),
        )
        .route("/api/v1/users/{id}/posts", get(feeds::user_posts))
        // PUT as documented; POST too, which is what JUCE sends for a PUT with a body.
        .route(
            "/api/v1/users/me",
            get(users::me).put(users::update_me).post(users::update_me),
        )
        .route(
            "/api/v1/users/username",
            put(users::change_username).post(users::change_username),
        )
        .route("/api/v1/users/{id}/profile", get(users::profile))
        .route("/api/v1/users/{id}/followers", get(users::followers))
        .route("/api/v1/users/{id}/following", get(users::following))
        .route("/api/v1/audio/{id}", get(audio::serve))
        .route("/api/v1/audio/{id}/waveform.json", get(audio::waveform))
        .route("/api/v1/audio/{id}/waveform.svg", get(audio::waveform_svg))
        .route("/api/v1/audio/{id}/status", get(audio::status))
        .route("/api/v1/feed/timeline", get(feeds::timeline))
        .route("/api/v1/feed/unified", get(feeds::unified))
        .route("/api/v1/feed/trending", get(feeds::trending))
        .route("/api/v1/recommendations/for-you", get(feeds::for_you))
        .route("/api/v1/feed/discovery", get(feeds::discovery));

    let unlimited = Router::new()
        .route("/health", get(health::health))
        .route("/health/gorse", get(health::gorse))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/openapi.json", get(openapi::openapi_json));

    let body_limit = state.max_body_bytes;
    Router::new()
        .merge(limited(auth_class, Class::Auth))
        .merge(limited(upload_class, Class::Upload))
        .merge(limited(default_class, Class::Default))
        .merge(unlimited)
        // Unknown paths spend the default budget too: probing is not free.
        .merge(
            Router::new()
                .fallback(|| async { ApiError::NotFound("no such route".into()).into_response() })
                .layer(from_fn_with_state(
                    (state.clone(), Class::Default),
                    limits::limit,
                )),
        )
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed.into_response() })
        .with_state(state.clone())
        .route_layer(from_fn(observe::record_route))
        .layer(from_fn_with_state(state, extract::auth::authenticate))
        .layer(option_layer(cors::layer(cors_origins)))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(extract::BodyLimit(body_limit)))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::Internal.into_response()
        }))
        .layer(from_fn_with_state(observe, observe::observe))
}
