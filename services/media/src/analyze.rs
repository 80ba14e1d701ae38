//! Decoding and measuring one file: duration, sample rate, channels, peak, EBU R128 integrated
//! loudness, and a peaks waveform. Runs on a blocking thread over a spooled local copy, so
//! memory stays bounded (one decoded packet plus one peak per 256 frames).

use std::fs::File;

use serde::Serialize;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CODEC_TYPE_NULL, DecoderOptions};
use symphonia::core::errors::Error as DecodeFailure;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

/// Peaks in a waveform.
pub const WAVEFORM_BUCKETS: usize = 800;
/// Frames folded into one fine-grained peak before the final resampling to the buckets.
const BLOCK_FRAMES: usize = 256;

/// What a file measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Decoded frames / sample rate.
    pub duration_seconds: f64,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Highest absolute sample, in dBFS.
    pub peak_dbfs: f64,
    /// Integrated loudness (EBU R128), LUFS; `-70` for silence.
    pub loudness_lufs: f64,
    /// The waveform.
    pub waveform: Waveform,
}

/// Peaks (0..=1) of equal slices of the audio, as served at `…/waveform.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waveform {
    /// Format version of this JSON.
    pub version: u32,
    /// Number of peaks.
    pub buckets: usize,
    /// The peaks, oldest slice first.
    pub peaks: Vec<f32>,
}

/// Why a file cannot be used. The text is shown to the uploader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    /// The container or codec is not one we decode, or its header is broken.
    #[error("not decodable audio: {0}")]
    Undecodable(String),
    /// A packet failed to decode.
    #[error("corrupt audio: {0}")]
    Corrupt(String),
    /// Fewer frames than the header promises.
    #[error("truncated: decoded {decoded} of {expected} frames")]
    Truncated {
        /// Frames decoded.
        decoded: u64,
        /// Frames the header announced.
        expected: u64,
    },
    /// No audio frames at all.
    #[error("no audio in the file")]
    Empty,
}

/// Decodes and measures `file`, whose format name (`wav`, …) helps the probe.
pub fn analyze(file: File, format: &str) -> Result<Measured, Unusable> {
    let source = MediaSourceStream::new(Box::new(file), Default::default());
    let mut hint = Hint::new();
    hint.with_extension(format);
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            source,
            &FormatOptions {
                // Trims encoder delay and padding (MP3 LAME tags, Ogg granule positions), so
                // lossy files measure their real length.
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|err| Unusable::Undecodable(err.to_string()))?;
    let mut reader = probed.format;
    let track = reader
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| Unusable::Undecodable("no audio track".into()))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|err| Unusable::Undecodable(err.to_string()))?;

    let mut sample_rate = params.sample_rate.unwrap_or(0);
    let mut channels = params.channels.map_or(0, |c| c.count() as u32);
    let mut meter: Option<ebur128::EbuR128> = None;
    let mut frames: u64 = 0;
    let mut peak: f32 = 0.0;
    let mut blocks: Vec<f32> = Vec::new();
    let mut block_peak: f32 = 0.0;
    let mut in_block = 0_usize;
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(DecodeFailure::IoError(err)) if err.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(DecodeFailure::ResetRequired) => break,
            Err(err) => return Err(Unusable::Corrupt(err.to_string())),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(err) => return Err(Unusable::Corrupt(err.to_string())),
        };
        let spec = *decoded.spec();
        if meter.is_none() {
            sample_rate = spec.rate;
            channels = spec.channels.count() as u32;
            meter = Some(
                ebur128::EbuR128::new(channels, sample_rate, ebur128::Mode::I)
                    .map_err(|err| Unusable::Undecodable(err.to_string()))?,
            );
        }
        let needed = decoded.capacity() as u64;
        let samples = buffer.get_or_insert_with(|| SampleBuffer::new(needed, spec));
        if (samples.capacity() as u64) < needed * spec.channels.count() as u64 {
            *samples = SampleBuffer::new(needed, spec);
        }
        samples.copy_interleaved_ref(decoded);
        let width = spec.channels.count().max(1);
        let all = samples.samples();
        // With gapless on, the demuxer marks encoder delay and padding to drop (Ogg's final
        // granule position, LAME's tag); the decoder leaves that to us.
        let total = all.len() / width;
        let skip_front = (packet.trim_start() as usize).min(total);
        let skip_back = (packet.trim_end() as usize).min(total - skip_front);
        let interleaved = &all[skip_front * width..(total - skip_back) * width];
        if let Some(meter) = meter.as_mut() {
            meter
                .add_frames_f32(interleaved)
                .map_err(|err| Unusable::Corrupt(err.to_string()))?;
        }
        for frame in interleaved.chunks(width) {
            let loudest = frame.iter().fold(0.0_f32, |m, s| m.max(s.abs()));
            peak = peak.max(loudest);
            block_peak = block_peak.max(loudest);
            in_block += 1;
            if in_block == BLOCK_FRAMES {
                blocks.push(block_peak);
                (block_peak, in_block) = (0.0, 0);
            }
        }
        frames += (interleaved.len() / width) as u64;
    }
    if in_block > 0 {
        blocks.push(block_peak);
    }
    if frames == 0 || sample_rate == 0 {
        return Err(Unusable::Empty);
    }
    // Lossless containers say exactly how many frames they hold; fewer means a cut-off file.
    if let Some(expected) = params.n_frames
        && matches!(format, "wav" | "aiff" | "flac")
        && frames < expected
    {
        return Err(Unusable::Truncated {
            decoded: frames,
            expected,
        });
    }
    // Lossy streams decode whole blocks; when the container states the length (the last Ogg
    // granule position), the padding past it is not audio.
    let frames = match params.n_frames {
        Some(stated) if matches!(format, "ogg" | "mp3") && stated > 0 && frames > stated => stated,
        _ => frames,
    };
    let loudness_lufs = meter
        .as_ref()
        .and_then(|m| m.loudness_global().ok())
        .filter(|l| l.is_finite())
        .unwrap_or(-70.0)
        .max(-70.0);
    let peak_dbfs = if peak > 0.0 {
        20.0 * f64::from(peak).log10()
    } else {
        -120.0
    };
    Ok(Measured {
        duration_seconds: frames as f64 / f64::from(sample_rate),
        sample_rate,
        channels,
        peak_dbfs,
        loudness_lufs,
        waveform: waveform(&blocks),
    })
}

/// [`WAVEFORM_BUCKETS`] peaks from the fine-grained block peaks.
fn waveform(blocks: &[f32]) -> Waveform {
    let n = blocks.len();
    let peaks = (0..WAVEFORM_BUCKETS)
        .map(|i| {
            let start = i * n / WAVEFORM_BUCKETS;
            let end = ((i + 1) * n / WAVEFORM_BUCKETS).max(start + 1).min(n);
            let peak = blocks
                .get(start..end)
                .unwrap_or_default()
                .iter()
                .fold(0.0_f32, |m, p| m.max(*p));
            (peak.min(1.0) * 10_000.0).round() / 10_000.0
        })
        .collect();
    Waveform {
        version: 1,
        buckets: WAVEFORM_BUCKETS,
        peaks,
    }
}

/// The waveform as an SVG image: one vertical bar per peak, mirrored around the middle
/// (`viewBox` 800 × 100, `currentColor`, so a page can colour it with CSS).
pub fn waveform_svg(waveform: &Waveform) -> String {
    use std::fmt::Write as _;
    let mut path = String::with_capacity(waveform.peaks.len() * 16);
    for (i, peak) in waveform.peaks.iter().enumerate() {
        let half = f64::from(peak.clamp(0.0, 1.0)) * 50.0;
        let _ = write!(
            path,
            "M{i}.5 {:.1}V{:.1}",
            50.0 - half,
            50.0 + half.max(0.5)
        );
    }
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} 100\" preserveAspectRatio=\"none\">\
<path d=\"{path}\" stroke=\"currentColor\" stroke-width=\"1\" fill=\"none\"/></svg>",
        waveform.peaks.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_svg_has_one_bar_per_peak_scaled_to_the_height() {
        let waveform = Waveform {
            version: 1,
            buckets: 3,
            peaks: vec![0.0, 0.5, 1.0],
        };
        let svg = waveform_svg(&waveform);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("viewBox=\"0 0 3 100\""), "{svg}");
        assert!(svg.contains("M1.5 25.0V75.0"), "{svg}");
        assert!(svg.contains("M2.5 0.0V100.0"), "{svg}");
        assert_eq!(svg.matches('M').count(), 3);
    }
}
