//! Media objects (uploaded audio, computed waveforms) behind one trait, [`MediaStore`].
//!
//! Objects are immutable: a key is written once (the upload's post id names it) and read many
//! times, so readers may cache them forever and an `ETag` is the content digest. Writes and reads
//! stream: a put reads its source in chunks, a get returns a reader; no backend holds a whole
//! object in memory.
//!
//! Backends:
//! - [`NatsMediaStore`]: the NATS JetStream Object Store (bucket `audio`, stream `OBJ_audio`),
//!   the embedded default — no extra server, replicated like the `EVENTS` stream in a cluster.
//!   Created by `sidechain-nats-admin provision` ([`object_bucket_stream`]); services only open it.
//!
//! An S3-compatible backend (`object_store` crate) is planned behind the same trait (see
//! `docs/architecture.md`, "Audio uploads").

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;

use async_nats::jetstream::{self, object_store, stream};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::sync::OnceCell;

/// Metadata key holding an object's media type.
const CONTENT_TYPE: &str = "content_type";

/// What a store knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its key.
    pub key: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its media type, as given to [`MediaStore::put`].
    pub content_type: String,
    /// A strong validator of its content (the backend's digest), usable as an HTTP `ETag`
    /// value without the quotes.
    pub digest: String,
}

/// A streamed object body.
pub type ObjectReader = Pin<Box<dyn AsyncRead + Send>>;

/// Why a store operation failed, grouped by what the caller does.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No object under that key (or it was deleted).
    #[error("no such object")]
    NotFound,
    /// The key is not a valid object name.
    #[error("invalid object key")]
    InvalidKey,
    /// Reading the data to store failed: nothing usable was stored.
    #[error("reading the object's data: {0}")]
    Source(String),
    /// The store could not be reached or refused the operation: retry later.
    #[error("object store unavailable: {0}")]
    Unavailable(String),
}

/// Where media objects live. One implementation per backend; services hold an
/// `Arc<dyn MediaStore>` chosen by configuration.
#[async_trait::async_trait]
pub trait MediaStore: Send + Sync + fmt::Debug {
    /// Stores everything `data` yields under `key` with `content_type`. Reads `data` in
    /// chunks; memory use does not grow with the object's size.
    async fn put(
        &self,
        key: &str,
        content_type: &str,
        data: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<ObjectMeta, StoreError>;

    /// The object's metadata.
    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError>;

    /// The object's metadata and a reader of its bytes from `offset` on (to its end).
    async fn get(&self, key: &str, offset: u64) -> Result<(ObjectMeta, ObjectReader), StoreError>;

    /// Removes the object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// Whether the store answers (for readiness).
    async fn check(&self) -> Result<(), StoreError>;
}

/// The stream behind an object-store bucket, as async-nats's `create_object_store` builds it
/// (created through the stream API for the same reason as KV buckets: async-nats cannot parse
/// nats-server 2.9's account info).
pub fn object_bucket_stream(bucket: &str, description: &str, replicas: usize) -> stream::Config {
    stream::Config {
        name: format!("OBJ_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$O.{bucket}.C.>"), format!("$O.{bucket}.M.>")],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        discard: stream::DiscardPolicy::New,
        allow_rollup: true,
        allow_direct: true,
        ..Default::default()
    }
}

/// Creates the object-store bucket `bucket` unless it exists. Idempotent.
pub async fn ensure_object_bucket(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: usize,
) -> Result<(), async_nats::Error> {
    if js.get_object_store(bucket).await.is_ok() {
        return Ok(());
    }
    if let Err(create) = js
        .create_stream(object_bucket_stream(bucket, description, replicas))
        .await
    {
        tracing::debug!(bucket, error = %create, "object bucket creation raced or failed; opening it");
    }
    js.get_object_store(bucket).await?;
    Ok(())
}

/// The NATS JetStream Object Store backend. Opens its bucket on first use, so a service started
/// before provisioning becomes able to store once the bucket exists.
#[derive(Clone)]
pub struct NatsMediaStore {
    js: jetstream::Context,
    bucket: String,
    store: std::sync::Arc<OnceCell<object_store::ObjectStore>>,
}

impl fmt::Debug for NatsMediaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsMediaStore")
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl NatsMediaStore {
    /// A store on the object bucket `bucket` of `js`.
    pub fn new(js: jetstream::Context, bucket: impl Into<String>) -> Self {
        Self {
            js,
            bucket: bucket.into(),
            store: std::sync::Arc::default(),
        }
    }

    async fn open(&self) -> Result<&object_store::ObjectStore, StoreError> {
        self.store
            .get_or_try_init(|| async {
                self.js.get_object_store(&self.bucket).await.map_err(|err| {
                    StoreError::Unavailable(format!("bucket {}: {err}", self.bucket))
                })
            })
            .await
    }
}

fn meta_of(info: &object_store::ObjectInfo) -> ObjectMeta {
    ObjectMeta {
        key: info.name.clone(),
        size: info.size as u64,
        content_type: info
            .metadata
            .get(CONTENT_TYPE)
            .cloned()
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        // A chunk-boundary-independent SHA-256 of the content, unique per object id otherwise.
        digest: info
            .digest
            .as_deref()
            .map(|d| d.trim_start_matches("SHA-256=").to_owned())
            .unwrap_or_else(|| info.nuid.clone()),
    }
}

fn info_error(err: object_store::InfoError) -> StoreError {
    match err.kind() {
        object_store::InfoErrorKind::NotFound => StoreError::NotFound,
        object_store::InfoErrorKind::InvalidName => StoreError::InvalidKey,
        _ => StoreError::Unavailable(err.to_string()),
    }
}

#[async_trait::async_trait]
impl MediaStore for NatsMediaStore {
    async fn put(
        &self,
        key: &str,
        content_type: &str,
        data: &mut (dyn AsyncRead + Unpin + Send),
    ) -> Result<ObjectMeta, StoreError> {
        let store = self.open().await?;
        let meta = object_store::ObjectMetadata {
            name: key.to_owned(),
            metadata: HashMap::from([(CONTENT_TYPE.to_owned(), content_type.to_owned())]),
            ..Default::default()
        };
        let mut data = data;
        let info = store
            .put(meta, &mut data)
            .await
            .map_err(|err| match err.kind() {
                object_store::PutErrorKind::InvalidName => StoreError::InvalidKey,
                object_store::PutErrorKind::ReadChunks => StoreError::Source(err.to_string()),
                _ => StoreError::Unavailable(err.to_string()),
            })?;
        Ok(meta_of(&info))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta, StoreError> {
        let info = self.open().await?.info(key).await.map_err(info_error)?;
        if info.deleted {
            return Err(StoreError::NotFound);
        }
        Ok(meta_of(&info))
    }

    async fn get(&self, key: &str, offset: u64) -> Result<(ObjectMeta, ObjectReader), StoreError> {
        let object = self
            .open()
            .await?
            .get(key)
            .await
            .map_err(|err| match err.kind() {
                object_store::GetErrorKind::NotFound => StoreError::NotFound,
                object_store::GetErrorKind::InvalidName => StoreError::InvalidKey,
                _ => StoreError::Unavailable(err.to_string()),
            })?;
        let meta = meta_of(object.info());
        let mut reader: ObjectReader = Box::pin(object);
        if offset > 0 {
            // Chunks are read in order from the first; skip to the offset without keeping them.
            let skipped = tokio::io::copy(&mut (&mut reader).take(offset), &mut tokio::io::sink())
                .await
                .map_err(|err| StoreError::Unavailable(err.to_string()))?;
            if skipped < offset {
                return Err(StoreError::Unavailable(format!(
                    "object {key} ended after {skipped} of {offset} bytes"
                )));
            }
        }
        Ok((meta, reader))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.open().await?.delete(key).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == object_store::DeleteErrorKind::NotFound => Ok(()),
            Err(err) => Err(StoreError::Unavailable(err.to_string())),
        }
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.open().await.map(|_| ())
    }
}
