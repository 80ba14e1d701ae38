//! Which media URLs clients may hand us (`audio_url`, `waveform_url` of a post): https only,
//! and, when `MEDIA_URL_HOSTS` is set, only on those hosts. Every client that plays a post
//! fetches these URLs, so an unrestricted one would let a poster make every listener's plugin
//! call a host of their choosing (tracking, or an internal address seen from the listener's
//! network). Uploads through the media service (issue 13) make URLs we issue ourselves.

/// The policy, from `MEDIA_URL_HOSTS`.
#[derive(Debug, Clone, Default)]
pub struct MediaUrls {
    /// Exact hosts (`cdn.sidechain.fm`) and suffixes (`.sidechain.fm`: any subdomain); empty
    /// means any host.
    hosts: Vec<String>,
}

/// Why a URL is refused (shown to the client).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field} {reason}")]
pub struct MediaUrlRefused {
    /// The request field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl MediaUrls {
    /// A policy allowing `hosts` (lower-case; a leading dot allows subdomains).
    pub fn new(hosts: Vec<String>) -> Self {
        Self { hosts }
    }

    /// Whether an entry of `MEDIA_URL_HOSTS` is a host name or `.suffix`.
    pub fn is_valid_entry(entry: &str) -> bool {
        let name = entry.strip_prefix('.').unwrap_or(entry);
        !name.is_empty()
            && url::Host::parse(name).is_ok_and(|host| matches!(host, url::Host::Domain(_)))
    }

    /// Fails unless `value` (already a valid absolute URL) may be stored as `field`.
    pub fn check(&self, field: &'static str, value: &str) -> Result<(), MediaUrlRefused> {
        let refused = |reason: String| MediaUrlRefused { field, reason };
        let url = url::Url::parse(value).map_err(|_| refused("must be a URL".into()))?;
        if url.scheme() != "https" {
            return Err(refused("must be an https URL".into()));
        }
        if self.hosts.is_empty() {
            return Ok(());
        }
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let allowed = self
            .hosts
            .iter()
            .any(|entry| match entry.strip_prefix('.') {
                Some(suffix) => host.len() > suffix.len() && host.ends_with(entry.as_str()),
                None => host == *entry,
            });
        if allowed {
            Ok(())
        } else {
            Err(refused(format!(
                "must be on one of the media hosts ({})",
                self.hosts.join(", ")
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_on_the_configured_hosts() {
        let open = MediaUrls::default();
        assert!(
            open.check("audio_url", "https://anywhere.example/a.wav")
                .is_ok()
        );
        assert!(
            open.check("audio_url", "http://anywhere.example/a.wav")
                .is_err()
        );

        let policy = MediaUrls::new(vec!["cdn.sidechain.fm".into(), ".media.example".into()]);
        for ok in [
            "https://cdn.sidechain.fm/a.wav",
            "https://CDN.sidechain.fm/a.wav",
            "https://eu.media.example/a.wav",
        ] {
            assert!(policy.check("audio_url", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://cdn.sidechain.fm/a.wav",
            "https://cdn.sidechain.fm.evil.example/a.wav",
            "https://media.example/a.wav",
            "https://evilmedia.example/a.wav",
            "https://10.0.0.1/a.wav",
        ] {
            let refused = policy.check("audio_url", bad).expect_err(bad);
            assert_eq!(refused.field, "audio_url");
        }
    }

    #[test]
    fn entries_are_host_names_or_suffixes() {
        assert!(MediaUrls::is_valid_entry("cdn.sidechain.fm"));
        assert!(MediaUrls::is_valid_entry(".sidechain.fm"));
        for bad in ["", ".", "https://cdn.sidechain.fm", "10.0.0.1", "a b"] {
            assert!(!MediaUrls::is_valid_entry(bad), "{bad}");
        }
    }
}
