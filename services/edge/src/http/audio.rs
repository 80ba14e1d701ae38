//! Audio: `POST /api/v1/audio/upload` (the plugin's and the web app's multipart upload) and
//! `GET /api/v1/audio/{id}` (the stored file, with HTTP Range), `GET
//! /api/v1/audio/{id}/waveform.json` (the media service's peaks, once computed).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest as _, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sidechain_events::PostId;
use sidechain_infra::media_store::{ObjectMeta, StoreError};
use tokio::io::AsyncReadExt as _;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiPath, AuthUser};
use crate::events::IdempotencyKey;
use crate::media::{Claims, UploadError};
use crate::state::AppState;

/// Multipart overhead allowed beyond `AUDIO_MAX_BYTES` (the text fields, boundaries, headers).
pub const MULTIPART_OVERHEAD: u64 = 1024 * 1024;

/// Largest `midi_data` field.
const MIDI_MAX_BYTES: usize = 256 * 1024;
/// Largest other text field.
const TEXT_MAX_BYTES: usize = 1024;
/// Most parts one upload may have.
const MAX_PARTS: usize = 32;

/// Objects never change once stored: a year, and `immutable` so browsers don't revalidate.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The answer to an upload: what the plugin reads (`id` or `post_id`, `audio_url` or `url`)
/// and what was stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadResponse {
    /// The new post's id.
    pub id: String,
    /// The same id, under the name some clients read.
    pub post_id: String,
    /// Absolute URL of the stored audio (`GET /api/v1/audio/{id}`).
    pub audio_url: String,
    /// The same URL, under the name some clients read.
    pub url: String,
    /// `processing` until the media service has measured the file.
    pub status: &'static str,
    /// What the bytes are: `wav`, `aiff`, `flac`, `mp3` or `ogg`.
    pub format: &'static str,
    /// Stored size in bytes.
    pub size_bytes: u64,
    /// The loop's name as sent.
    pub filename: String,
    /// Tempo as claimed (0 when not sent).
    pub bpm: f64,
    /// Key as claimed.
    pub key: String,
    /// Genre as claimed.
    pub genre: Option<String>,
    /// Length in seconds as claimed, until measured.
    pub duration_seconds: f64,
    /// The DAW as claimed.
    pub daw: Option<String>,
    /// The uploader.
    pub user_id: String,
    /// The uploader's username.
    pub username: String,
}

/// Uploads a loop (multipart).
///
/// File part `audio_file` (WAV, AIFF, FLAC, MP3 or Ogg, told from its bytes); text parts
/// `filename, bpm, key, genre, duration_seconds, daw, duration_bars, sample_rate, channels,
/// recording_id, midi_data, comment_audience` — all optional, numbers as text (`"120.0"`).
#[utoipa::path(post, path = "/api/v1/audio/upload", tag = "audio",
    security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "`audio_file` plus optional text fields"),
    params(("Idempotency-Key" = Option<String>, Header, description = "A retry with the same key and file stores one post")),
    responses(
        (status = 202, description = "Stored; measured by the media service next", body = UploadResponse),
        (status = 400, description = "Not multipart, no `audio_file`, empty file or a bad field", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 408, description = "The upload stalled (`UPLOAD_IDLE_TIMEOUT`) or took longer than `UPLOAD_TIMEOUT`", body = ErrorBody),
        (status = 413, description = "Larger than `AUDIO_MAX_BYTES`", body = ErrorBody),
        (status = 415, description = "Not WAV, AIFF, FLAC, MP3 or Ogg", body = ErrorBody),
        (status = 422, description = "Idempotency-Key already used for a different request", body = ErrorBody),
        (status = 429, description = "Rate limited (upload class)", body = ErrorBody),
        (status = 503, description = "Media store or event store unavailable; nothing kept", body = ErrorBody),
    ))]
pub async fn upload(
    State(state): State<Arc<AppState>>,
    user: AuthUser,
    key: IdempotencyKey,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>), ApiError> {
    let audio = &state.audio;
    let result = receive(&state, &user, &key, request).await;
    match &result {
        Ok(_) => audio.count("accepted"),
        Err(Refused::Upload(err)) => {
            tracing::info!(outcome = err.outcome(), error = %err, "upload refused");
            audio.count(err.outcome());
        }
        Err(Refused::Request(outcome, err)) => {
            tracing::info!(outcome, error = %err, "upload refused");
            audio.count(outcome);
        }
    }
    result.map_err(ApiError::from)
}

/// Why an upload was refused: the domain's reasons, or the HTTP request's own.
#[derive(Debug)]
enum Refused {
    Upload(UploadError),
    Request(&'static str, ApiError),
}

impl From<UploadError> for Refused {
    fn from(err: UploadError) -> Self {
        Refused::Upload(err)
    }
}

impl From<Refused> for ApiError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Upload(err) => err.into(),
            Refused::Request(_, err) => err,
        }
    }
}

fn malformed(message: impl Into<String>) -> Refused {
    Refused::Request(
        "malformed",
        ApiError::bad_request("invalid_multipart", message),
    )
}

async fn receive(
    state: &AppState,
    user: &AuthUser,
    key: &IdempotencyKey,
    request: Request,
) -> Result<(StatusCode, Json<UploadResponse>), Refused> {
    let started = Instant::now();
    let audio = &state.audio;
    let limit = audio.config().max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit + MULTIPART_OVERHEAD) {
        return Err(UploadError::TooLarge { limit }.into());
    }
    let mut multipart = Multipart::from_request(request, &()).await.map_err(|_| {
        Refused::Request(
            "malformed",
            ApiError::bad_request(
                "invalid_multipart",
                "expected a multipart/form-data body with a boundary",
            ),
        )
    })?;

    let idle = audio.config().upload_idle_timeout;
    let stalled = || Refused::Upload(UploadError::Stalled(idle));
    let mut fields = TextFields::default();
    let mut spooled = None;
    let mut part_name = String::new();
    let mut parts = 0;
    loop {
        let next = tokio::time::timeout(idle, multipart.next_field())
            .await
            .map_err(|_| stalled())?
            .map_err(|err| multipart_error(&err, limit))?;
        let Some(mut field) = next else { break };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(malformed(format!("at most {MAX_PARTS} parts")));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if name == "audio_file" {
            if spooled.is_some() {
                return Err(malformed("more than one audio_file part"));
            }
            part_name = field.file_name().unwrap_or_default().to_owned();
            let mut spool = audio.spool()?;
            loop {
                let chunk = tokio::time::timeout(idle, field.chunk())
                    .await
                    .map_err(|_| stalled())?
                    .map_err(|err| multipart_error(&err, limit))?;
                let Some(chunk) = chunk else { break };
                spool.write(&chunk).await?;
            }
            spooled = Some(spool.finish().await?);
        } else {
            let cap = if name == "midi_data" {
                MIDI_MAX_BYTES
            } else {
                TEXT_MAX_BYTES
            };
            let mut text = Vec::new();
            loop {
                let chunk = tokio::time::timeout(idle, field.chunk())
                    .await
                    .map_err(|_| stalled())?
                    .map_err(|err| multipart_error(&err, limit))?;
                let Some(chunk) = chunk else { break };
                if text.len() + chunk.len() > cap {
                    return Err(invalid_field(&name, &format!("is longer than {cap} bytes")));
                }
                text.extend_from_slice(&chunk);
            }
            let text =
                String::from_utf8(text).map_err(|_| invalid_field(&name, "is not UTF-8 text"))?;
            fields.set(name, text);
        }
    }
    let Some(spooled) = spooled else {
        return Err(Refused::Request(
            "malformed",
            ApiError::bad_request(
                "missing_audio_file",
                "the multipart body has no audio_file part",
            ),
        ));
    };
    let claims = fields.claims(&part_name)?;
    let accepted = audio
        .accept(
            &state.events,
            &user.session,
            key,
            spooled,
            claims.clone(),
            started,
        )
        .await?;
    state
        .cache
        .remember_post(accepted.post_id, Some(user.session.user_id))
        .await;
    let post = accepted.post;
    Ok((
        StatusCode::ACCEPTED,
        Json(UploadResponse {
            id: post.post_id.clone(),
            post_id: post.post_id,
            url: post.audio_url.clone(),
            audio_url: post.audio_url,
            status: "processing",
            format: accepted.format.name(),
            size_bytes: accepted.size,
            filename: claims.filename,
            bpm: claims.bpm,
            key: claims.key,
            genre: Some(claims.genre).filter(|g| !g.is_empty()),
            duration_seconds: claims.duration_seconds,
            daw: Some(claims.daw).filter(|d| !d.is_empty()),
            user_id: user.session.user_id.to_string(),
            username: user.session.username.clone(),
        }),
    ))
}

fn multipart_error(err: &axum::extract::multipart::MultipartError, limit: u64) -> Refused {
    if err.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Refused::Upload(UploadError::TooLarge { limit })
    } else {
        malformed(format!(
            "the multipart body is malformed: {}",
            err.body_text()
        ))
    }
}

fn invalid_field(name: &str, reason: &str) -> Refused {
    Refused::Request(
        "invalid_field",
        ApiError::bad_request("invalid_field", format!("{name} {reason}")),
    )
}

/// The text parts, by name; unknown names are ignored (clients add fields over time).
#[derive(Debug, Default)]
struct TextFields(std::collections::HashMap<String, String>);

impl TextFields {
    fn set(&mut self, name: String, value: String) {
        self.0.insert(name, value);
    }

    fn text(&self, name: &str, max_chars: usize) -> Result<String, Refused> {
        let value = self.0.get(name).map(|v| v.trim()).unwrap_or_default();
        if value.chars().count() > max_chars {
            return Err(invalid_field(
                name,
                &format!("is longer than {max_chars} characters"),
            ));
        }
        if value
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(invalid_field(name, "contains control characters"));
        }
        Ok(value.to_owned())
    }

    /// A number sent as text (`"120.0"`, `"44100"`); absent or empty is 0.
    fn number(&self, name: &str, max: f64) -> Result<f64, Refused> {
        let value = self.0.get(name).map(|v| v.trim()).unwrap_or_default();
        if value.is_empty() {
            return Ok(0.0);
        }
        let number: f64 = value
            .parse()
            .map_err(|_| invalid_field(name, "must be a number"))?;
        if !number.is_finite() || !(0.0..=max).contains(&number) {
            return Err(invalid_field(name, &format!("must be between 0 and {max}")));
        }
        Ok(number)
    }

    fn whole(&self, name: &str, max: f64) -> Result<i32, Refused> {
        Ok(self.number(name, max)?.round() as i32)
    }

    fn claims(&self, part_name: &str) -> Result<Claims, Refused> {
        let mut filename = self.text("filename", 255)?;
        if filename.is_empty() {
            filename = part_name.chars().take(255).collect();
        }
        let midi_data = self.0.get("midi_data").cloned().unwrap_or_default();
        Ok(Claims {
            filename,
            bpm: self.number("bpm", 400.0)?,
            key: self.text("key", 32)?,
            genre: self.text("genre", 32)?,
            duration_seconds: self.number("duration_seconds", 3600.0)?,
            daw: self.text("daw", 64)?,
            duration_bars: self.whole("duration_bars", 10_000.0)?,
            sample_rate: self.whole("sample_rate", 768_000.0)?,
            channels: self.whole("channels", 64.0)?,
            recording_id: self.text("recording_id", 64)?,
            comment_audience: self.text("comment_audience", 32)?,
            midi_data,
        })
    }
}

/// The stored audio of a post.
///
/// Public (no token needed: players fetch it directly), immutable and cacheable; honours
/// `Range` (one range; 206 with `Content-Range`, 416 when unsatisfiable) and `If-None-Match`.
#[utoipa::path(get, path = "/api/v1/audio/{id}", tag = "audio",
    params(("id" = String, Path, description = "Post id (UUID)"),
        ("Range" = Option<String>, Header, description = "One byte range, e.g. `bytes=0-1023`"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier answer")),
    responses(
        (status = 200, description = "The whole file", content_type = "audio/*"),
        (status = 206, description = "The requested range", content_type = "audio/*"),
        (status = 304, description = "Not modified (ETag matched)"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 416, description = "Range not satisfiable", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn serve(
    State(state): State<Arc<AppState>>,
    ApiPath(post_id): ApiPath<PostId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_object(&state, &post_id.to_string(), &headers).await
}

/// The waveform of a post's audio: `{"version":1,"buckets":800,"peaks":[…]}`, written by the
/// media service once it has processed the upload (404 until then).
#[utoipa::path(get, path = "/api/v1/audio/{id}/waveform.json", tag = "audio",
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses(
        (status = 200, description = "Peaks", content_type = "application/json"),
        (status = 304, description = "Not modified (ETag matched)"),
        (status = 400, body = ErrorBody), (status = 404, description = "No such post, or not processed yet", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn waveform(
    State(state): State<Arc<AppState>>,
    ApiPath(post_id): ApiPath<PostId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_object(&state, &waveform_key(post_id), &headers).await
}

/// The waveform drawn as an SVG image (800 bars, `currentColor`), written by the media
/// service with the peaks (404 until then).
#[utoipa::path(get, path = "/api/v1/audio/{id}/waveform.svg", tag = "audio",
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses(
        (status = 200, description = "The image", content_type = "image/svg+xml"),
        (status = 304, description = "Not modified (ETag matched)"),
        (status = 400, body = ErrorBody), (status = 404, description = "No such post, or not processed yet", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn waveform_svg(
    State(state): State<Arc<AppState>>,
    ApiPath(post_id): ApiPath<PostId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_object(&state, &format!("{post_id}.waveform.svg"), &headers).await
}

/// What became of an upload: `{"status":"processing"}` until the media service has looked at
/// it, then `{"status":"processed", duration_seconds, sample_rate, channels, peak_dbfs,
/// loudness_lufs}` or `{"status":"rejected","reason":"…"}` (the reason is for the uploader).
#[utoipa::path(get, path = "/api/v1/audio/{id}/status", tag = "audio",
    params(("id" = String, Path, description = "Post id (UUID)")),
    responses(
        (status = 200, description = "The verdict so far", content_type = "application/json"),
        (status = 400, body = ErrorBody), (status = 404, description = "No such upload", body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn status(
    State(state): State<Arc<AppState>>,
    ApiPath(post_id): ApiPath<PostId>,
) -> Result<Response, ApiError> {
    let key = format!("{post_id}.status.json");
    match state.audio.open(&key, 0).await {
        Ok((meta, mut reader)) => {
            let mut body = Vec::with_capacity(meta.size as usize);
            // A small JSON document written by the media service.
            (&mut reader)
                .take(64 * 1024)
                .read_to_end(&mut body)
                .await
                .map_err(|err| store_error(StoreError::Unavailable(err.to_string())))?;
            let mut response = Response::new(Body::from(body));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        }
        Err(StoreError::NotFound) => {
            // Uploaded but not looked at yet, or no such upload at all.
            state
                .audio
                .head(&post_id.to_string())
                .await
                .map_err(store_error)?;
            let mut response = Json(serde_json::json!({"status": "processing"})).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            Ok(response)
        }
        Err(err) => Err(store_error(err)),
    }
}

/// Key of a post's waveform peaks in the media store.
pub fn waveform_key(post_id: PostId) -> String {
    format!("{post_id}.waveform.json")
}

async fn serve_object(
    state: &AppState,
    key: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let meta = state.audio.head(key).await.map_err(store_error)?;
    let etag = format!("\"{}\"", meta.digest);
    if if_none_match(headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        common_headers(response.headers_mut(), &meta, &etag);
        return Ok(response);
    }
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(text) => match parse_range(text, meta.size) {
            RangeRequest::Ignored => None,
            RangeRequest::Satisfiable(start, end) => Some((start, end)),
            RangeRequest::Unsatisfiable => {
                let mut response =
                    ApiError::RangeNotSatisfiable { size: meta.size }.into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{}", meta.size)),
                );
                response
                    .headers_mut()
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                return Ok(response);
            }
        },
        None => None,
    };
    let (start, end) = range.unwrap_or((0, meta.size.saturating_sub(1)));
    let length = if meta.size == 0 { 0 } else { end - start + 1 };
    let (_, reader) = state.audio.open(key, start).await.map_err(store_error)?;
    state.audio.served(length);
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(reader.take(length)));
    let mut response = Response::new(body);
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        response.headers_mut().insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {start}-{end}/{}", meta.size)),
        );
    }
    let headers = response.headers_mut();
    common_headers(headers, &meta, &etag);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn common_headers(headers: &mut HeaderMap, meta: &ObjectMeta, etag: &str) {
    headers.insert(header::ETAG, header_value(etag));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::CONTENT_TYPE, header_value(&meta.content_type));
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

fn store_error(err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound | StoreError::InvalidKey => ApiError::NotFound("no such audio".into()),
        StoreError::Source(reason) | StoreError::Unavailable(reason) => {
            tracing::warn!(error = %reason, "media store unavailable");
            ApiError::unavailable(
                "media_store_unavailable",
                "the media store is unavailable; retry",
            )
        }
    }
}

/// What a `Range` header asks of an object of a given size.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Not a single byte range we understand: answer the whole object (RFC 9110 §14.2).
    Ignored,
    /// Bytes `start..=end`.
    Satisfiable(u64, u64),
    /// A valid range that starts past the end: 416.
    Unsatisfiable,
}

fn parse_range(text: &str, size: u64) -> RangeRequest {
    let Some(spec) = text.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let number = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Satisfiable(size.saturating_sub(suffix), size - 1)
            }
        }
        (false, Some(start), None) if last.trim().is_empty() => {
            if start >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Satisfiable(start, size - 1)
            }
        }
        (false, Some(start), Some(end)) if start <= end => {
            if start >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Satisfiable(start, end.min(size - 1))
            }
        }
        _ => RangeRequest::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_rfc_9110_says() {
        let size = 1000;
        let cases = [
            ("bytes=0-99", RangeRequest::Satisfiable(0, 99)),
            ("bytes=900-", RangeRequest::Satisfiable(900, 999)),
            ("bytes=-100", RangeRequest::Satisfiable(900, 999)),
            ("bytes=-5000", RangeRequest::Satisfiable(0, 999)),
            ("bytes=990-5000", RangeRequest::Satisfiable(990, 999)),
            ("bytes=999-999", RangeRequest::Satisfiable(999, 999)),
            ("bytes=1000-", RangeRequest::Unsatisfiable),
            ("bytes=1000-1001", RangeRequest::Unsatisfiable),
            ("bytes=-0", RangeRequest::Unsatisfiable),
            ("bytes=5-1", RangeRequest::Ignored),
            ("bytes=0-1,5-6", RangeRequest::Ignored),
            ("items=0-1", RangeRequest::Ignored),
            ("bytes=a-b", RangeRequest::Ignored),
            ("bytes=+1-2", RangeRequest::Ignored),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_range(text, size), expected, "{text}");
        }
    }

    #[test]
    fn numbers_sent_as_text_are_read_leniently_and_bad_ones_named() {
        let mut fields = TextFields::default();
        fields.set("bpm".into(), " 120.0 ".into());
        fields.set("sample_rate".into(), "44100".into());
        fields.set("duration_bars".into(), "7.6".into());
        let claims = fields.claims("loop.wav").expect("claims");
        assert_eq!(claims.bpm, 120.0);
        assert_eq!(claims.sample_rate, 44_100);
        assert_eq!(claims.duration_bars, 8);
        assert_eq!(claims.duration_seconds, 0.0, "absent is 0");
        assert_eq!(
            claims.filename, "loop.wav",
            "the part's name when no filename"
        );
        for (name, bad) in [
            ("bpm", "fast"),
            ("bpm", "NaN"),
            ("bpm", "-1"),
            ("channels", "65"),
        ] {
            let mut fields = TextFields::default();
            fields.set(name.into(), bad.into());
            let Err(Refused::Request(_, err)) = fields.claims("") else {
                panic!("{name}={bad} accepted");
            };
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }
}
