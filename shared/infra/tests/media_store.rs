//! The NATS Object Store backend of `MediaStore`, as the edge's identity uses it against a real
//! provisioned server: what goes in comes out byte for byte, from any offset, across chunk
//! boundaries; deleted objects are gone; a missing object is `NotFound`.

use sidechain_infra::media_store::{MediaStore, NatsMediaStore, StoreError};
use sidechain_infra::nats::{self, NatsConfig};
use sidechain_test_support::{Identity, NatsServer};
use tokio::io::AsyncReadExt as _;

async fn store_as(server: &NatsServer, identity: Identity) -> NatsMediaStore {
    let config = NatsConfig::from_source(&server.source(identity)).expect("config");
    let client = nats::connect(identity.name(), &config)
        .await
        .expect("connect");
    NatsMediaStore::new(
        nats::jetstream(client, &config),
        sidechain_events::subjects::AUDIO_BUCKET,
    )
}

/// Bytes that differ at every position, longer than two 128 KiB chunks.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test]
async fn objects_round_trip_from_any_offset_and_deletes_remove_them() {
    let server = NatsServer::start();
    let store = store_as(&server, Identity::Edge).await;
    store.check().await.expect("the provisioned bucket opens");

    let data = content(300_000);
    let meta = store
        .put("post-1", "audio/wav", &mut data.as_slice())
        .await
        .expect("put");
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(meta.content_type, "audio/wav");
    assert!(!meta.digest.is_empty());

    let head = store.head("post-1").await.expect("head");
    assert_eq!(head, meta);

    for offset in [0_u64, 1, 131_071, 131_072, 200_000, 299_999] {
        let (got_meta, mut reader) = store.get("post-1", offset).await.expect("get");
        assert_eq!(got_meta.digest, meta.digest);
        let mut read = Vec::new();
        reader.read_to_end(&mut read).await.expect("read");
        assert_eq!(
            read,
            data[offset as usize..],
            "bytes from offset {offset} differ"
        );
    }

    store.delete("post-1").await.expect("delete");
    assert!(matches!(
        store.head("post-1").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.get("post-1", 0).await,
        Err(StoreError::NotFound)
    ));
    store
        .delete("post-1")
        .await
        .expect("deleting a missing object is fine");
    assert!(matches!(
        store.head("never-stored").await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn a_failing_source_is_reported_as_such() {
    struct Broken;
    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::other("client went away")))
        }
    }
    let server = NatsServer::start();
    let store = store_as(&server, Identity::Edge).await;
    let err = store
        .put("post-2", "audio/wav", &mut Broken)
        .await
        .expect_err("a broken source stores nothing");
    assert!(matches!(err, StoreError::Source(_)), "{err:?}");
    assert!(matches!(
        store.head("post-2").await,
        Err(StoreError::NotFound)
    ));
}

#[tokio::test]
async fn stored_objects_survive_a_nats_restart() {
    let mut server = NatsServer::start();
    let data = content(200_000);
    {
        let store = store_as(&server, Identity::Edge).await;
        store
            .put("kept", "audio/flac", &mut data.as_slice())
            .await
            .expect("put");
    }
    server.kill();
    server.restart();
    // A fresh client after the restart: the bucket and its object came back from disk.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let read = loop {
        let store = store_as(&server, Identity::Edge).await;
        if let Ok((meta, mut reader)) = store.get("kept", 0).await {
            assert_eq!(meta.content_type, "audio/flac");
            let mut read = Vec::new();
            reader.read_to_end(&mut read).await.expect("read");
            break read;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "object not readable after the restart"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(read, data);
}
