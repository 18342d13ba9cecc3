//! MPEG Layer III framing: frame headers, the frames of a response, silent frames, and the
//! Xing/Info frame with LAME's encoder delay and padding.
//!
//! Not responsible for decoding samples (see `decode`) or encoding them (see `lame`).

use std::ops::Range;

use super::AudioError;

/// One MP3 frame header, as far as assembly needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub sample_rate: u32,
    pub kbps: u32,
    /// 1152 for MPEG-1, 576 for MPEG-2/2.5 Layer III.
    pub samples: u32,
    pub len: usize,
}

pub(crate) const MPEG1_KBPS: [u32; 15] = [
    0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
];
pub(crate) const MPEG2_KBPS: [u32; 15] =
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// Parses a Layer III frame header at the start of `b`.
pub fn frame_header(b: &[u8]) -> Option<FrameHeader> {
    if b.len() < 4 || b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (b[1] >> 3) & 0b11; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    let layer = (b[1] >> 1) & 0b11; // 1 = Layer III
    if version == 1 || layer != 1 {
        return None;
    }
    let bitrate_index = (b[2] >> 4) as usize;
    let rate_index = ((b[2] >> 2) & 0b11) as usize;
    let padding = ((b[2] >> 1) & 1) as usize;
    if bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    let (kbps, sample_rate, samples, coeff) = match version {
        3 => (
            MPEG1_KBPS[bitrate_index],
            [44_100, 48_000, 32_000][rate_index],
            1152,
            144_000,
        ),
        2 => (
            MPEG2_KBPS[bitrate_index],
            [22_050, 24_000, 16_000][rate_index],
            576,
            72_000,
        ),
        _ => (
            MPEG2_KBPS[bitrate_index],
            [11_025, 12_000, 8_000][rate_index],
            576,
            72_000,
        ),
    };
    let len = (coeff * kbps / sample_rate) as usize + padding;
    Some(FrameHeader {
        sample_rate,
        kbps,
        samples,
        len,
    })
}

/// The byte ranges of the audio frames of an MP3 stream: an ID3v2 tag, a Xing/Info/VBRI frame
/// and a trailing ID3v1 tag are skipped. Errors when no frame is found.
pub fn mp3_frames(data: &[u8]) -> Result<(Vec<Range<usize>>, FrameHeader), AudioError> {
    let mut pos = 0;
    if data.len() >= 10 && &data[..3] == b"ID3" {
        let size = data[6..10]
            .iter()
            .fold(0usize, |acc, &b| (acc << 7) | (b & 0x7F) as usize);
        let footer = if data[5] & 0x10 != 0 { 10 } else { 0 };
        pos = 10 + size + footer;
    }
    let mut frames = Vec::new();
    let mut first: Option<FrameHeader> = None;
    while pos < data.len() {
        if data.len() - pos >= 3 && &data[pos..pos + 3] == b"TAG" && data.len() - pos == 128 {
            break;
        }
        let Some(h) = frame_header(&data[pos..]) else {
            if frames.is_empty() && pos < data.len().min(4096) {
                pos += 1; // resynchronise within the first bytes
                continue;
            }
            return Err(AudioError::BadMp3(format!("no frame sync at byte {pos}")));
        };
        if pos + h.len > data.len() {
            return Err(AudioError::BadMp3(format!(
                "last frame cut short at byte {pos} ({} of {} bytes)",
                data.len() - pos,
                h.len
            )));
        }
        let frame = &data[pos..pos + h.len];
        if frames.is_empty() && first.is_none() && is_info_frame(frame) {
            first = Some(h);
            pos += h.len;
            continue;
        }
        if let Some(f) = first
            && (f.sample_rate != h.sample_rate)
        {
            return Err(AudioError::BadMp3("sample rate changes mid-stream".into()));
        }
        first = Some(h);
        frames.push(pos..pos + h.len);
        pos += h.len;
    }
    match (frames.is_empty(), first) {
        (false, Some(h)) => Ok((frames, h)),
        _ => Err(AudioError::BadMp3("no MP3 frames".into())),
    }
}

pub(crate) fn is_info_frame(frame: &[u8]) -> bool {
    let window = &frame[..frame.len().min(64)];
    window
        .windows(4)
        .any(|w| w == b"Xing" || w == b"Info" || w == b"VBRI")
}

/// One mono Layer III frame that decodes to silence: a header and all-zero side information
/// (no main data), as long as a frame of `kbps` at `sample_rate`.
pub fn silent_frame(sample_rate: u32, kbps: u32) -> Result<Vec<u8>, AudioError> {
    let (mpeg1, rates, table, coeff) = if sample_rate >= 32_000 {
        (true, [44_100, 48_000, 32_000], &MPEG1_KBPS, 144_000)
    } else {
        (false, [22_050, 24_000, 16_000], &MPEG2_KBPS, 72_000)
    };
    let rate_index = rates
        .iter()
        .position(|&r| r == sample_rate)
        .ok_or_else(|| AudioError::BadMp3(format!("no MP3 frame at {sample_rate} Hz")))?;
    let bitrate_index = table
        .iter()
        .position(|&k| k == kbps && k != 0)
        .ok_or_else(|| AudioError::BadMp3(format!("no MP3 bitrate of {kbps} kbps")))?;
    let len = (coeff * kbps / sample_rate) as usize;
    let mut frame = vec![0u8; len];
    frame[0] = 0xFF;
    frame[1] = if mpeg1 { 0xFB } else { 0xF3 };
    frame[2] = ((bitrate_index as u8) << 4) | ((rate_index as u8) << 2);
    frame[3] = 0xC0; // mono
    Ok(frame)
}

/// The delay of the MP3 synthesis filterbank, in samples: what every decoder adds in front.
pub const DECODER_DELAY: usize = 529;

/// Whether the bytes before the first audio frame hold a Xing/Info frame with LAME's
/// extension (encoder delay and padding).
pub(crate) fn has_lame_tag(before_audio: &[u8]) -> bool {
    let info = before_audio
        .windows(4)
        .any(|w| w == b"Info" || w == b"Xing");
    info && before_audio
        .windows(4)
        .any(|w| w == b"LAME" || w == b"Lavc")
}

/// The encoder delay and padding LAME (or libavcodec) wrote into a stream's Info/Xing frame,
/// from the bytes before its first audio frame.
pub fn gapless_info(before_audio: &[u8]) -> Option<(u64, u64)> {
    let at = before_audio
        .windows(4)
        .position(|w| w == b"LAME" || w == b"Lavc")?;
    let b = before_audio.get(at + 21..at + 24)?;
    let delay = (u64::from(b[0]) << 4) | (u64::from(b[1]) >> 4);
    let padding = (u64::from(b[1] & 0x0F) << 8) | u64::from(b[2]);
    has_lame_tag(before_audio).then_some((delay, padding))
}

/// The `Info` frame (Xing header of a constant-bitrate file): a frame shaped like `silent`
/// carrying the number of audio frames, the bytes from this frame to the end, and a seek table
/// when the frame has room for one.
pub(crate) fn info_frame(silent: &[u8], mpeg1: bool, frames: u32, bytes: u32) -> Vec<u8> {
    let mut f = silent.to_vec();
    let at = 4 + if mpeg1 { 17 } else { 9 }; // header and mono side information
    let with_toc = f.len() >= at + 4 + 4 + 4 + 4 + 100 + 4;
    let mut info = b"Info".to_vec();
    let flags: u32 = if with_toc { 0x0F } else { 0x03 };
    info.extend_from_slice(&flags.to_be_bytes());
    info.extend_from_slice(&frames.to_be_bytes());
    info.extend_from_slice(&bytes.to_be_bytes());
    if with_toc {
        // Constant bitrate: byte position grows linearly with time.
        info.extend((0..100u32).map(|i| (i * 256 / 100) as u8));
        info.extend_from_slice(&0u32.to_be_bytes()); // quality
    }
    f[at..at + info.len()].copy_from_slice(&info);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silent_frames_parse_as_frames() {
        for (rate, kbps, spf) in [
            (44_100, 128, 1152),
            (22_050, 32, 576),
            (24_000, 48, 576),
            (44_100, 192, 1152),
        ] {
            let f = silent_frame(rate, kbps).unwrap();
            let h = frame_header(&f).unwrap();
            assert_eq!(
                (h.sample_rate, h.kbps, h.samples, h.len),
                (rate, kbps, spf, f.len())
            );
        }
    }
}
