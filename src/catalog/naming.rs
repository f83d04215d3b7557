//! Naming rules: how Google's titles and filenames become names that every OS accepts.
//!
//! Google allows what file trees cannot: filenames are not unique (not even inside one album),
//! titles repeat, may contain `/`, `:` or control characters, may be empty, `.` or `..`, and may
//! be longer than any filesystem allows. The rules, compatible with rclone's Google Photos
//! backend and its "Windows" encoding so users can switch between the two:
//! - characters Windows rejects (`\ : * ? " < > |`) and `/` become their fullwidth look-alikes
//!   (`＼ ： ＊ ？ ＂ ＜ ＞ ｜ ／`), control characters become the Unicode control pictures
//!   (`␀`..`␟`, `␡`), a trailing space becomes `␠` and a trailing dot `．`;
//! - an empty name becomes the item's (or album's) id; `.` and `..` become `．` and `．．`;
//! - a file name always ends with an extension matching the item's mime type (one is appended
//!   when missing or different), because clients and dav-server derive Content-Type from it;
//! - when several entries of one folder share a name, *each* gets its id: `stem {ID}.ext` for
//!   files, `title {ID}` for folders. The result depends only on the folder's entries, so it is
//!   stable across listings and restarts;
//! - a name longer than 255 bytes is shortened, keeping the extension and any ` {ID}`, and
//!   marked with a short hash of the full name (stable, and distinct from its neighbours);
//! - names that differ only by case or Unicode normalisation stay distinct (lookups are exact
//!   first); a lookup that finds nothing exact tries the NFC form, since macOS sends NFD;
//! - a name carrying `{ID}` can always be resolved by that id.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// Longest name, in bytes, that common filesystems accept.
pub const MAX_NAME_BYTES: usize = 255;

/// Replaces what Windows, macOS or Linux cannot show in a name.
pub fn sanitize(name: &str) -> String {
    let name = match name {
        "." => return "．".into(),
        ".." => return "．．".into(),
        n => n,
    };
    let mut out: String = name
        .chars()
        .map(|c| match c {
            '/' => '／',
            '\\' => '＼',
            ':' => '：',
            '*' => '＊',
            '?' => '？',
            '"' => '＂',
            '<' => '＜',
            '>' => '＞',
            '|' => '｜',
            '\u{7f}' => '␡',
            c if (c as u32) < 0x20 => char::from_u32(0x2400 + c as u32).unwrap_or('�'),
            c => c,
        })
        .collect();
    match out.pop() {
        Some(' ') => out.push('␠'),
        Some('.') => out.push('．'),
        Some(c) => out.push(c),
        None => {}
    }
    out
}

/// The extensions that fit a mime type; the first is the one appended when none fits.
fn extensions_for(mime: &str) -> &'static [&'static str] {
    match mime.to_ascii_lowercase().as_str() {
        "image/jpeg" | "image/jpg" => &["jpg", "jpeg", "jpe"],
        "image/png" => &["png"],
        "image/gif" => &["gif"],
        "image/webp" => &["webp"],
        "image/heic" => &["heic"],
        "image/heif" => &["heif", "heic"],
        "image/avif" => &["avif"],
        "image/tiff" => &["tif", "tiff"],
        "image/bmp" | "image/x-ms-bmp" => &["bmp"],
        "image/x-icon" | "image/vnd.microsoft.icon" => &["ico"],
        "image/x-adobe-dng" | "image/dng" => &["dng"],
        "image/x-canon-cr2" => &["cr2"],
        "image/x-canon-cr3" => &["cr3"],
        "image/x-nikon-nef" => &["nef"],
        "image/x-sony-arw" => &["arw"],
        "image/x-olympus-orf" => &["orf"],
        "image/x-panasonic-rw2" => &["rw2"],
        "image/x-fuji-raf" => &["raf"],
        "video/mp4" => &["mp4", "m4v"],
        "video/quicktime" => &["mov", "qt"],
        "video/x-msvideo" | "video/avi" => &["avi"],
        "video/3gpp" => &["3gp"],
        "video/3gpp2" => &["3g2"],
        "video/x-matroska" => &["mkv"],
        "video/webm" => &["webm"],
        "video/mpeg" => &["mpg", "mpeg"],
        "video/mp2t" => &["mts", "m2ts", "ts"],
        "video/x-ms-wmv" => &["wmv"],
        "video/x-m4v" => &["m4v"],
        _ => &[],
    }
}

/// Makes sure `name` ends with an extension that fits `mime` (unknown types are left alone).
pub fn with_extension(name: &str, mime: &str) -> String {
    let allowed = extensions_for(mime);
    let Some(first) = allowed.first() else {
        return name.to_string();
    };
    if let (_, Some(ext)) = split_extension(name)
        && allowed.iter().any(|a| a.eq_ignore_ascii_case(ext))
    {
        return name.to_string();
    }
    format!("{name}.{first}")
}

/// What a folder holds, as far as naming is concerned: the id and Google's title of each
/// entry, so albums, files and picked items are named by one set of rules.
pub struct Named<'a> {
    pub id: &'a str,
    /// The title or filename Google gave.
    pub name: &'a str,
    /// For files: the mime type (decides the extension). None for folders.
    pub mime: Option<&'a str>,
}

/// Final names for one folder's entries, in input order.
pub fn folder_names(entries: &[Named<'_>]) -> Vec<String> {
    let bases: Vec<String> = entries
        .iter()
        .map(|e| {
            let raw = if e.name.is_empty() { e.id } else { e.name };
            // The extension first: "x." becomes "x..jpg", whose dot is no longer trailing.
            match e.mime {
                Some(mime) => sanitize(&with_extension(raw, mime)),
                None => sanitize(raw),
            }
        })
        .collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for base in &bases {
        *counts.entry(base.as_str()).or_default() += 1;
    }
    bases
        .iter()
        .zip(entries)
        .map(|(base, e)| {
            let is_file = e.mime.is_some();
            let (stem, ext) = if is_file {
                split_extension(base)
            } else {
                (base.as_str(), None)
            };
            let id_part = if counts[base.as_str()] > 1 {
                format!(" {{{}}}", e.id)
            } else {
                String::new()
            };
            let suffix = match ext {
                Some(ext) => format!("{id_part}.{ext}"),
                None => id_part,
            };
            fit(stem, &suffix, base)
        })
        .collect()
}

/// `stem + suffix`, shortened to [`MAX_NAME_BYTES`] by cutting the stem and marking it with a
/// hash of `full` (the untruncated name), so shortened names stay distinct and stable.
fn fit(stem: &str, suffix: &str, full: &str) -> String {
    if stem.len() + suffix.len() <= MAX_NAME_BYTES {
        return format!("{stem}{suffix}");
    }
    let hash = hex::encode(&Sha256::digest(full.as_bytes())[..4]);
    let marker = format!("~{hash}");
    let mut budget = MAX_NAME_BYTES.saturating_sub(suffix.len() + marker.len());
    while !stem.is_char_boundary(budget.min(stem.len())) {
        budget -= 1;
    }
    format!("{}{marker}{suffix}", &stem[..budget.min(stem.len())])
}

/// Splits `name.ext` into (`name`, Some(`ext`)); a leading dot is not an extension.
fn split_extension(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

/// The id inside the last `{...}` of a name, if any.
pub fn id_from_name(name: &str) -> Option<&str> {
    let open = name.rfind('{')?;
    let close = open + name[open..].find('}')?;
    let id = &name[open + 1..close];
    (!id.is_empty()).then_some(id)
}

/// Whether a name is in NFC already (most are): then it is its own [`nfc`] form.
pub fn is_nfc(name: &str) -> bool {
    unicode_normalization::is_nfc(name)
}

/// The NFC form of a name, used to find names a client sent in another normalisation.
pub fn nfc(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    name.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str, &str)]) -> Vec<String> {
        let named: Vec<Named> = entries
            .iter()
            .map(|(id, name, mime)| Named {
                id,
                name,
                mime: Some(mime),
            })
            .collect();
        folder_names(&named)
    }

    fn folders(entries: &[(&str, &str)]) -> Vec<String> {
        let named: Vec<Named> = entries
            .iter()
            .map(|(id, name)| Named {
                id,
                name,
                mime: None,
            })
            .collect();
        folder_names(&named)
    }

    const JPEG: &str = "image/jpeg";

    #[test]
    fn duplicates_all_get_their_id() {
        let names = files(&[
            ("A1", "IMG_1.JPG", JPEG),
            ("B2", "IMG_1.JPG", JPEG),
            ("C3", "other.png", "image/png"),
            ("D4", "", JPEG),
        ]);
        assert_eq!(
            names,
            ["IMG_1 {A1}.JPG", "IMG_1 {B2}.JPG", "other.png", "D4.jpg"]
        );
    }

    #[test]
    fn extension_follows_the_mime_type() {
        assert_eq!(with_extension("a.JPEG", JPEG), "a.JPEG");
        assert_eq!(with_extension("a.png", JPEG), "a.png.jpg");
        assert_eq!(with_extension("README", JPEG), "README.jpg");
        assert_eq!(with_extension("clip", "video/quicktime"), "clip.mov");
        assert_eq!(with_extension("clip.MP4", "video/mp4"), "clip.MP4");
        assert_eq!(
            with_extension("odd.xyz", "application/x-unknown"),
            "odd.xyz"
        );
    }

    #[test]
    fn windows_illegal_and_control_characters_become_look_alikes() {
        assert_eq!(
            sanitize(r#"a\b:c*d?e"f<g>h|i/j"#),
            "a＼b：c＊d？e＂f＜g＞h｜i／j"
        );
        assert_eq!(sanitize("tab\there\u{1}\u{7f}"), "tab␉here␁␡");
        assert_eq!(sanitize("trailing. "), "trailing.␠");
        assert_eq!(sanitize("dots.."), "dots.．");
        assert_eq!(sanitize("."), "．");
        assert_eq!(sanitize(".."), "．．");
    }

    #[test]
    fn album_titles() {
        let names = folders(&[
            ("X", "Trip"),
            ("Y", "Trip"),
            ("Z", "a/b"),
            ("E", ""),
            ("F", ".."),
        ]);
        assert_eq!(names, ["Trip {X}", "Trip {Y}", "a／b", "E", "．．"]);
    }

    #[test]
    fn long_names_are_shortened_stably_keeping_extension_and_id() {
        let long = format!("{}.jpg", "é".repeat(200)); // 404 bytes
        let names = files(&[("A", &long, JPEG)]);
        assert!(names[0].len() <= MAX_NAME_BYTES, "{}", names[0].len());
        assert!(names[0].ends_with(".jpg"));
        assert_eq!(names, files(&[("A", &long, JPEG)]), "stable");
        let other = format!("{}x.jpg", "é".repeat(200));
        assert_ne!(names[0], files(&[("B", &other, JPEG)])[0], "distinct");

        let dupes = files(&[("ID1", &long, JPEG), ("ID2", &long, JPEG)]);
        for (n, id) in dupes.iter().zip(["ID1", "ID2"]) {
            assert!(n.len() <= MAX_NAME_BYTES);
            assert!(n.ends_with(&format!(" {{{id}}}.jpg")), "{n}");
            assert_eq!(id_from_name(n), Some(id));
        }
        let title = "t".repeat(300);
        let names = folders(&[("A", &title)]);
        assert!(names[0].len() <= MAX_NAME_BYTES);
    }

    #[test]
    fn case_and_normalisation_variants_stay_distinct() {
        let nfc_name = "Caf\u{e9}.jpg";
        let nfd_name = "Cafe\u{301}.jpg";
        let names = files(&[
            ("A", nfc_name, JPEG),
            ("B", nfd_name, JPEG),
            ("C", "cafe.jpg", JPEG),
            ("D", "CAFE.jpg", JPEG),
        ]);
        assert_eq!(names, [nfc_name, nfd_name, "cafe.jpg", "CAFE.jpg"]);
        assert_eq!(nfc(nfd_name), nfc_name);
    }

    #[test]
    fn id_extraction() {
        assert_eq!(id_from_name("IMG_1 {A1}.JPG"), Some("A1"));
        assert_eq!(id_from_name("Trip {XYZ}"), Some("XYZ"));
        assert_eq!(id_from_name("plain.jpg"), None);
        assert_eq!(id_from_name("odd {}.jpg"), None);
    }
}
