//! An upload on its way in: written to an unnamed temporary file as it arrives, counted against
//! the size cap, hashed, and its first bytes kept for sniffing. Memory per upload is one chunk,
//! whatever the file's size; nothing reaches the media store until the whole file is here and
//! acceptable, so a refused or abandoned upload leaves nothing behind (the file disappears when
//! its handle is dropped).

use std::io::SeekFrom;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

use super::UploadError;
use super::format::{AudioFormat, SNIFF_BYTES, sniff};

/// A file being received.
#[derive(Debug)]
pub struct Spool {
    file: tokio::fs::File,
    size: u64,
    limit: u64,
    head: Vec<u8>,
    hasher: Sha256,
}

/// A complete upload whose bytes are audio of an accepted format.
#[derive(Debug)]
pub struct Spooled {
    /// The bytes, positioned at the start.
    pub file: tokio::fs::File,
    /// Its length.
    pub size: u64,
    /// What the bytes say it is.
    pub format: AudioFormat,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

impl Spool {
    /// A spool in `dir` (the system's temporary directory when `None`) refusing more than
    /// `limit` bytes.
    pub fn new(dir: Option<&Path>, limit: u64) -> Result<Self, UploadError> {
        let file = match dir {
            Some(dir) => tempfile::tempfile_in(dir),
            None => tempfile::tempfile(),
        }
        .map_err(|err| UploadError::Spool(err.to_string()))?;
        Ok(Self {
            file: tokio::fs::File::from_std(file),
            size: 0,
            limit,
            head: Vec::with_capacity(SNIFF_BYTES),
            hasher: Sha256::new(),
        })
    }

    /// Appends `chunk`; fails once the total passes the limit, or as soon as the first bytes
    /// show the file is not audio of an accepted format.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        if self.head.len() < SNIFF_BYTES {
            let wanted = (SNIFF_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..wanted]);
            if self.head.len() == SNIFF_BYTES && sniff(&self.head).is_none() {
                return Err(UploadError::NotAudio);
            }
        }
        self.hasher.update(chunk);
        self.file
            .write_all(chunk)
            .await
            .map_err(|err| UploadError::Spool(err.to_string()))
    }

    /// The whole upload, checked: not empty, and audio of an accepted format.
    pub async fn finish(mut self) -> Result<Spooled, UploadError> {
        if self.size == 0 {
            return Err(UploadError::Empty);
        }
        let format = sniff(&self.head).ok_or(UploadError::NotAudio)?;
        let spool_error = |err: std::io::Error| UploadError::Spool(err.to_string());
        self.file.flush().await.map_err(spool_error)?;
        self.file
            .seek(SeekFrom::Start(0))
            .await
            .map_err(spool_error)?;
        Ok(Spooled {
            file: self.file,
            size: self.size,
            format,
            sha256: hex::encode(self.hasher.finalize()),
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt as _;

    use super::*;

    #[tokio::test]
    async fn a_file_is_kept_whole_however_it_is_chunked() {
        let mut spool = Spool::new(None, 1000).expect("spool");
        let data: Vec<u8> = b"RIFF\x00\x00\x00\x00WAVE"
            .iter()
            .copied()
            .chain((0..500).map(|i| i as u8))
            .collect();
        for chunk in data.chunks(3) {
            spool.write(chunk).await.expect("write");
        }
        let mut spooled = spool.finish().await.expect("finish");
        assert_eq!(spooled.format, AudioFormat::Wav);
        assert_eq!(spooled.size, data.len() as u64);
        assert_eq!(spooled.sha256, hex::encode(Sha256::digest(&data)));
        let mut back = Vec::new();
        spooled.file.read_to_end(&mut back).await.expect("read");
        assert_eq!(back, data);
    }

    #[tokio::test]
    async fn too_large_empty_and_non_audio_are_refused() {
        let mut spool = Spool::new(None, 16).expect("spool");
        spool
            .write(b"RIFF\x00\x00\x00\x00WAVE")
            .await
            .expect("fits");
        assert!(matches!(
            spool.write(b"12345").await,
            Err(UploadError::TooLarge { limit: 16 })
        ));
        let spool = Spool::new(None, 16).expect("spool");
        assert!(matches!(spool.finish().await, Err(UploadError::Empty)));
        let mut spool = Spool::new(None, 100).expect("spool");
        assert!(matches!(
            spool.write(b"<html><body>hi").await,
            Err(UploadError::NotAudio)
        ));
        let mut spool = Spool::new(None, 100).expect("spool");
        spool.write(b"RIFF").await.expect("too short to tell yet");
        assert!(matches!(spool.finish().await, Err(UploadError::NotAudio)));
    }
}
