//! Deciding from the first bytes of an upload whether it is a photo or a video.
//!
//! Google Photos accepts only images and videos, and a client's `Content-Type` (or the
//! name's extension) says little: rclone and curl send `application/octet-stream`, Finder
//! sends nothing. So the bytes decide, with the `infer` crate's magic-number tables, plus
//! the ISO media `ftyp` brands `infer` does not know (3GP and friends are videos to Google).

/// What an upload is, as far as Google's limits care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Photo,
    Video,
}

/// How many leading bytes [`sniff`] wants to see (fewer is fine at the end of a body).
pub const SNIFF_LEN: usize = 64;

/// Google's limits: photos up to 200 MB, videos up to 20 GB.
pub const PHOTO_MAX: u64 = 200 * 1024 * 1024;
pub const VIDEO_MAX: u64 = 20 * 1024 * 1024 * 1024;

impl Kind {
    pub fn max_size(self) -> u64 {
        match self {
            Kind::Photo => PHOTO_MAX,
            Kind::Video => VIDEO_MAX,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Photo => "photo",
            Kind::Video => "video",
        }
    }
}

/// The kind and mime type of content starting with `head`, or None when it is neither an
/// image nor a video.
pub fn sniff(head: &[u8]) -> Option<(Kind, &'static str)> {
    if let Some(t) = infer::get(head) {
        match t.matcher_type() {
            infer::MatcherType::Image => return Some((Kind::Photo, t.mime_type())),
            infer::MatcherType::Video => return Some((Kind::Video, t.mime_type())),
            _ => {}
        }
    }
    // ISO base media files `infer` does not name: 3GP/3G2 and other camera brands.
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Some(match &head[8..11] {
            b"3g2" => (Kind::Video, "video/3gpp2"),
            b"3gp" => (Kind::Video, "video/3gpp"),
            _ => (Kind::Video, "video/mp4"),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_kinds() {
        let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
        assert_eq!(sniff(&jpeg), Some((Kind::Photo, "image/jpeg")));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some((Kind::Photo, "image/png"))
        );
        assert_eq!(
            sniff(b"GIF89a\x01\0\x01\0"),
            Some((Kind::Photo, "image/gif"))
        );
        let mp4 = b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";
        assert_eq!(sniff(mp4), Some((Kind::Video, "video/mp4")));
        let mov = b"\0\0\0\x14ftypqt  \x20\x05\x03\0qt  ";
        assert_eq!(sniff(mov), Some((Kind::Video, "video/quicktime")));
        let gp = b"\0\0\0\x14ftyp3gp5\0\0\0\0isom";
        assert_eq!(sniff(gp).map(|k| k.0), Some(Kind::Video));
        let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic";
        assert_eq!(sniff(heic).map(|k| k.0), Some(Kind::Photo));
    }

    #[test]
    fn other_content_is_refused() {
        assert_eq!(sniff(b"hello, world\n"), None);
        assert_eq!(sniff(b"%PDF-1.7\n"), None);
        assert_eq!(sniff(b"PK\x03\x04\x14\0\0\0"), None);
        assert_eq!(sniff(b""), None);
    }
}
