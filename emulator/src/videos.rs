//! Real, decodable videos for the fixture library's MP4 items.
//!
//! The library's other bytes are generated, but a browser's `<video>` element (the gallery's
//! viewer, issue #17) only reaches a frame, a duration and a working seek bar on a stream it
//! can decode, and no few lines of Rust write an H.264 encoder. So each MP4 shape of the
//! fixture library has a tiny real clip, committed as a binary file: two seconds at 10 fps of
//! an orange square crossing a blue field, H.264 High profile, `yuv420p`, `moov` in front
//! (`+faststart`), no audio, keyframes every second: about 3 KB each, and every file Google
//! Photos accepts and Chromium plays. They were made once with the static ffmpeg that
//! `pip install imageio-ffmpeg` brings (imageio-ffmpeg 0.8.1: ffmpeg n9.0.2 with libx264;
//! `python3 -c "import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"` names it), for each
//! `SIZE` in `1920x1080`, `1280x720` and `1080x1920`:
//!
//! ```text
//! ffmpeg -f lavfi -i "color=c=0x3366aa:size=SIZE:rate=10:duration=2,drawbox=x='t*400':y=200:w=300:h=300:c=orange:t=fill" \
//!     -c:v libx264 -preset veryslow -crf 40 -pix_fmt yuv420p -g 10 -movflags +faststart \
//!     -an -map_metadata -1 -fflags +bitexact SIZE.mp4
//! ```
//!
//! An item keeps the size the seed chose for it (tests and docs count the library's bytes):
//! [`padded`] appends a `free` box of seeded noise, which every MP4 reader skips, up to that
//! size.

use bytes::Bytes;

/// The committed clips, by the fixture item's width and height.
const CLIPS: [(u32, u32, &[u8]); 3] = [
    (1920, 1080, include_bytes!("videos/1920x1080.mp4")),
    (1280, 720, include_bytes!("videos/1280x720.mp4")),
    (1080, 1920, include_bytes!("videos/1080x1920.mp4")),
];

/// The clip of a `width`x`height` MP4 item followed by a `free` box of noise from `noise`
/// (called until the box is full), `len` bytes in all; `None` when no clip has that shape or
/// `len` leaves no room for the box.
pub(crate) fn padded(
    width: u32,
    height: u32,
    len: usize,
    mut noise: impl FnMut() -> u64,
) -> Option<Bytes> {
    let (_, _, clip) = CLIPS.iter().find(|(w, h, _)| (*w, *h) == (width, height))?;
    let free_len = len.checked_sub(clip.len()).filter(|n| *n >= 8)?;
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(clip);
    out.extend_from_slice(&u32::try_from(free_len).ok()?.to_be_bytes());
    out.extend_from_slice(b"free");
    while out.len() < len {
        let chunk = noise().to_le_bytes();
        let take = chunk.len().min(len - out.len());
        out.extend_from_slice(&chunk[..take]);
    }
    Some(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-level boxes: (type, size), walking the sizes from the start.
    fn boxes(bytes: &[u8]) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
            out.push((String::from_utf8_lossy(&bytes[at + 4..at + 8]).into(), size));
            at += size.max(8);
        }
        assert_eq!(at, bytes.len(), "the boxes end where the file ends");
        out
    }

    #[test]
    fn a_padded_clip_is_the_clip_then_a_free_box() {
        let mut n = 0u64;
        let out = padded(1920, 1080, 150_000, || {
            n += 1;
            n
        })
        .unwrap();
        assert_eq!(out.len(), 150_000);
        assert_eq!(&out[..CLIPS[0].2.len()], CLIPS[0].2);
        let kinds: Vec<String> = boxes(&out).into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds.first().map(String::as_str), Some("ftyp"));
        assert_eq!(
            kinds[1], "moov",
            "moov in front, so a browser plays and seeks early"
        );
        assert_eq!(kinds.last().map(String::as_str), Some("free"));
        assert!(kinds.contains(&"mdat".to_string()));
    }

    #[test]
    fn no_clip_for_other_shapes_or_too_small_a_size() {
        assert!(padded(640, 480, 150_000, || 0).is_none());
        assert!(padded(1920, 1080, CLIPS[0].2.len() + 7, || 0).is_none());
        assert!(padded(1920, 1080, CLIPS[0].2.len() + 8, || 0).is_some());
    }
}
