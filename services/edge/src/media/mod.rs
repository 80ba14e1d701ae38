//! Audio at the edge: accepting an upload (spooled, sniffed, stored in the media store, then
//! recorded as `audio_uploaded` and `post_created`) and reading stored objects back for serving.
//!
//! The order makes an accepted upload never lost and never half-written: the object is complete
//! in the store before any event names it, and the client's 2xx comes only after both events are
//! acknowledged. If recording fails, the object is removed again and the client gets 503 (see
//! `docs/architecture.md`, "Audio uploads", for the one window this leaves).

pub mod format;
pub mod spool;

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use sidechain_events::events::event::Payload;
use sidechain_events::events::{AudioUploaded, PostCreated};
use sidechain_events::{EventKind, PostId};
use sidechain_infra::media_store::{MediaStore, ObjectMeta, ObjectReader, StoreError};

use crate::auth::sessions::Session;
use crate::config::AudioConfig;
use crate::events::{EventPublisher, IdempotencyKey, RecordError};

pub use format::AudioFormat;
pub use spool::{Spool, Spooled};

/// Why an upload was not accepted. Nothing was stored in any of these cases.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The file is larger than `AUDIO_MAX_BYTES`.
    #[error("the audio file is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The file part is empty.
    #[error("the audio file is empty")]
    Empty,
    /// The bytes are not WAV, AIFF, FLAC, MP3 or Ogg.
    #[error("the file is not WAV, AIFF, FLAC, MP3 or Ogg audio")]
    NotAudio,
    /// The client stopped sending for longer than `UPLOAD_IDLE_TIMEOUT`.
    #[error("the upload stalled: nothing arrived for {0:?}")]
    Stalled(Duration),
    /// The local spool failed (disk full, …): retry later.
    #[error("upload spool failed: {0}")]
    Spool(String),
    /// The media store could not store it: retry later.
    #[error("media store unavailable: {0}")]
    StoreUnavailable(String),
    /// The events could not be recorded (the object was removed again).
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl UploadError {
    /// Label of the `outcome` metric.
    pub fn outcome(&self) -> &'static str {
        match self {
            UploadError::TooLarge { .. } => "too_large",
            UploadError::Empty => "empty",
            UploadError::NotAudio => "not_audio",
            UploadError::Stalled(_) => "stalled",
            UploadError::Spool(_) => "spool_failed",
            UploadError::StoreUnavailable(_) => "store_unavailable",
            UploadError::Record(RecordError::KeyReused) => "key_reused",
            UploadError::Record(RecordError::NotStored(_)) => "event_not_stored",
        }
    }
}

/// What the client said about its upload, parsed. Kept as the user's claim; the media
/// service's measurements win where they disagree.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims {
    /// The loop's name.
    pub filename: String,
    /// Tempo (0 when not sent).
    pub bpm: f64,
    /// Musical key.
    pub key: String,
    /// One genre.
    pub genre: String,
    /// Length in seconds (0 when not sent).
    pub duration_seconds: f64,
    /// The DAW it came from.
    pub daw: String,
    /// Length in bars.
    pub duration_bars: i32,
    /// Sample rate the plugin recorded at.
    pub sample_rate: i32,
    /// Channel count.
    pub channels: i32,
    /// The plugin's recording id.
    pub recording_id: String,
    /// Who may comment.
    pub comment_audience: String,
    /// MIDI capture as JSON text.
    pub midi_data: String,
}

/// An accepted upload: stored, and its events acknowledged.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The new post.
    pub post_id: PostId,
    /// The post as published.
    pub post: PostCreated,
    /// What the bytes are.
    pub format: AudioFormat,
    /// Stored size.
    pub size: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FormatLabels {
    format: &'static str,
}

/// Uploads and stored audio, for the HTTP layer.
#[derive(Debug, Clone)]
pub struct Audio {
    store: Arc<dyn MediaStore>,
    config: AudioConfig,
    uploads: Family<OutcomeLabels, Counter>,
    upload_bytes: Family<FormatLabels, Counter>,
    upload_duration: Histogram,
    served_bytes: Counter,
}

impl Audio {
    /// Audio kept in `store`; registers the upload metrics.
    pub fn new(store: Arc<dyn MediaStore>, config: AudioConfig, registry: &mut Registry) -> Self {
        let uploads = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "audio_uploads",
            "Audio uploads by outcome (accepted|too_large|empty|not_audio|stalled|malformed|invalid_field|spool_failed|store_unavailable|event_not_stored|key_reused)",
            uploads.clone(),
        );
        let upload_bytes = Family::<FormatLabels, Counter>::default();
        registry.register_with_unit(
            "audio_upload",
            "Bytes of accepted audio uploads, by sniffed format",
            Unit::Bytes,
            upload_bytes.clone(),
        );
        let upload_duration = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register_with_unit(
            "audio_upload_duration",
            "Time from the first byte of an upload to its acknowledged events (accepted uploads)",
            Unit::Seconds,
            upload_duration.clone(),
        );
        let served_bytes = Counter::default();
        registry.register_with_unit(
            "audio_served",
            "Bytes of stored audio and waveforms sent to clients",
            Unit::Bytes,
            served_bytes.clone(),
        );
        Self {
            store,
            config,
            uploads,
            upload_bytes,
            upload_duration,
            served_bytes,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AudioConfig {
        &self.config
    }

    /// A spool for a new upload.
    pub fn spool(&self) -> Result<Spool, UploadError> {
        Spool::new(self.config.spool_dir.as_deref(), self.config.max_bytes)
    }

    /// Counts an upload's outcome.
    pub fn count(&self, outcome: &'static str) {
        self.uploads.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Counts bytes sent to a client.
    pub fn served(&self, bytes: u64) {
        self.served_bytes.inc_by(bytes);
    }

    /// Absolute URL of the stored audio of `post_id`.
    pub fn audio_url(&self, post_id: PostId) -> String {
        format!(
            "{}/api/v1/audio/{post_id}",
            self.config.public_base_url.as_str().trim_end_matches('/')
        )
    }

    /// Stores `spooled` and records it as `audio_uploaded` and `post_created` by the session's
    /// user; ids derive from `key`, so a retry with the same key and bytes is stored once.
    pub async fn accept(
        &self,
        events: &EventPublisher,
        session: &Session,
        key: &IdempotencyKey,
        mut spooled: Spooled,
        claims: Claims,
        started: Instant,
    ) -> Result<Accepted, UploadError> {
        let author = session.user_id;
        let post_id = PostId::from_uuid(key.entity_id(author, EventKind::AudioUploaded, "post"));
        let object_key = post_id.to_string();
        let format = spooled.format;
        self.store
            .put(&object_key, format.content_type(), &mut spooled.file)
            .await
            .map_err(|err| match err {
                StoreError::Source(reason) => UploadError::Spool(reason),
                other => UploadError::StoreUnavailable(other.to_string()),
            })?;
        let audio_url = self.audio_url(post_id);
        let uploaded = AudioUploaded {
            post_id: post_id.to_string(),
            object_key: object_key.clone(),
            content_type: format.content_type().to_owned(),
            format: format.name().to_owned(),
            size_bytes: spooled.size as i64,
            sha256: spooled.sha256.clone(),
            audio_url: audio_url.clone(),
            filename: claims.filename.clone(),
            claimed_bpm: claims.bpm,
            key: claims.key.clone(),
            genre: claims.genre.clone(),
            claimed_duration_seconds: claims.duration_seconds,
            daw: claims.daw.clone(),
            claimed_duration_bars: claims.duration_bars,
            claimed_sample_rate: claims.sample_rate,
            claimed_channels: claims.channels,
            recording_id: claims.recording_id.clone(),
            comment_audience: claims.comment_audience.clone(),
            midi_data: claims.midi_data.clone(),
        };
        let genre = claims.genre.trim().to_lowercase();
        let post = PostCreated {
            post_id: post_id.to_string(),
            title: claims.filename.clone(),
            audio_url,
            waveform_url: String::new(),
            bpm: claims.bpm,
            key: claims.key.clone(),
            genres: if genre.is_empty() {
                vec![]
            } else {
                vec![genre]
            },
            duration_seconds: claims.duration_seconds,
            daw: claims.daw.clone(),
            filename: claims.filename.clone(),
        };
        let recorded = async {
            events
                .record(
                    key,
                    author,
                    &session.username,
                    Payload::AudioUploaded(uploaded),
                )
                .await?;
            // The key is bound to the upload above; the post is its consequence, with an id of
            // its own derived from the same key.
            events
                .publish(
                    key.event_id(author, EventKind::PostCreated),
                    author,
                    &session.username,
                    Payload::PostCreated(post.clone()),
                )
                .await
                .map_err(RecordError::from)?;
            Ok::<(), RecordError>(())
        }
        .await;
        if let Err(err) = recorded {
            if let Err(cleanup) = self.store.delete(&object_key).await {
                tracing::error!(post_id = %post_id, error = %cleanup, "could not remove the object of an unrecorded upload");
            }
            return Err(err.into());
        }
        self.upload_bytes
            .get_or_create(&FormatLabels {
                format: format.name(),
            })
            .inc_by(spooled.size);
        self.upload_duration
            .observe(started.elapsed().as_secs_f64());
        Ok(Accepted {
            post_id,
            post,
            format,
            size: spooled.size,
        })
    }

    /// Metadata of a stored object.
    pub async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        self.store.head(key).await
    }

    /// A stored object from `offset` on.
    pub async fn open(
        &self,
        key: &str,
        offset: u64,
    ) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        self.store.get(key, offset).await
    }

    /// Whether the media store answers.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.store.check().await
    }
}
