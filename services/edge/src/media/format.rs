//! Which audio formats an upload may be, told from the file's first bytes (never from the
//! client's `Content-Type` or file name, which anyone can set).

/// Bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 12;

/// An accepted audio container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// RIFF/WAVE (also RF64 and BW64, the large-file variants).
    Wav,
    /// AIFF or AIFF-C.
    Aiff,
    /// FLAC.
    Flac,
    /// MPEG audio layer III (with or without a leading ID3v2 tag).
    Mp3,
    /// Ogg (Vorbis, Opus or FLAC inside).
    Ogg,
}

impl AudioFormat {
    /// Short name, as in events and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            AudioFormat::Wav => "wav",
            AudioFormat::Aiff => "aiff",
            AudioFormat::Flac => "flac",
            AudioFormat::Mp3 => "mp3",
            AudioFormat::Ogg => "ogg",
        }
    }

    /// The media type it is served with.
    pub const fn content_type(self) -> &'static str {
        match self {
            AudioFormat::Wav => "audio/wav",
            AudioFormat::Aiff => "audio/aiff",
            AudioFormat::Flac => "audio/flac",
            AudioFormat::Mp3 => "audio/mpeg",
            AudioFormat::Ogg => "audio/ogg",
        }
    }
}

/// The format of a file starting with `head` (at least [`SNIFF_BYTES`] bytes, or the whole file
/// when it is shorter), or `None` when it is none of the accepted ones.
pub fn sniff(head: &[u8]) -> Option<AudioFormat> {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if (at(0, b"RIFF") || at(0, b"RF64") || at(0, b"BW64")) && at(8, b"WAVE") {
        return Some(AudioFormat::Wav);
    }
    if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        return Some(AudioFormat::Aiff);
    }
    if at(0, b"fLaC") {
        return Some(AudioFormat::Flac);
    }
    if at(0, b"OggS") {
        return Some(AudioFormat::Ogg);
    }
    if at(0, b"ID3") && head.len() >= 4 && head[3] <= 4 {
        return Some(AudioFormat::Mp3);
    }
    mpeg_frame_header(head).then_some(AudioFormat::Mp3)
}

/// Whether `head` starts with a plausible MPEG-1/2/2.5 Layer III frame header: 11 sync bits, a
/// known version, layer III, a bitrate index that is neither free (0) nor bad (15) and a known
/// sample rate.
fn mpeg_frame_header(head: &[u8]) -> bool {
    let [a, b, c, ..] = head else {
        return false;
    };
    let sync = *a == 0xFF && b & 0xE0 == 0xE0;
    let version_known = (b >> 3) & 0b11 != 0b01;
    let layer_three = (b >> 1) & 0b11 == 0b01;
    let bitrate = c >> 4;
    let sample_rate = (c >> 2) & 0b11;
    sync && version_known && layer_three && bitrate != 0 && bitrate != 0xF && sample_rate != 0b11
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_told_from_its_magic() {
        let cases: [(&[u8], Option<AudioFormat>); 11] = [
            (b"RIFF\x24\x00\x00\x00WAVEfmt ", Some(AudioFormat::Wav)),
            (b"RF64\xff\xff\xff\xffWAVEds64", Some(AudioFormat::Wav)),
            (b"FORM\x00\x00\x00\x2eAIFFCOMM", Some(AudioFormat::Aiff)),
            (b"FORM\x00\x00\x00\x2eAIFCFVER", Some(AudioFormat::Aiff)),
            (
                b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00",
                Some(AudioFormat::Flac),
            ),
            (
                b"OggS\x00\x02\x00\x00\x00\x00\x00\x00",
                Some(AudioFormat::Ogg),
            ),
            (
                b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb",
                Some(AudioFormat::Mp3),
            ),
            (
                b"\xff\xfb\x90\x64\x00\x00\x00\x00\x00\x00\x00\x00",
                Some(AudioFormat::Mp3),
            ),
            // A RIFF that is not WAVE (an AVI), a PNG, text.
            (b"RIFF\x24\x00\x00\x00AVI LIST", None),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0d", None),
            (b"hello, world", None),
        ];
        for (head, expected) in cases {
            assert_eq!(sniff(head), expected, "{head:?}");
        }
    }

    #[test]
    fn short_or_empty_heads_are_not_audio() {
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"RIFF"), None);
        assert_eq!(sniff(b"\xff\xfb"), None);
        // Free-format bitrate and a reserved sample rate are not accepted as MP3 frames.
        assert_eq!(sniff(b"\xff\xfb\x00\x00"), None);
        assert_eq!(sniff(b"\xff\xfb\x9c\x00"), None);
    }
}
