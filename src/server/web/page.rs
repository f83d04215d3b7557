//! The gallery page of a folder: breadcrumbs, sub-folders, and a grid of thumbnails, rendered
//! on the server (maud) so that a folder is one request and works without script; the script
//! (`assets/gallery.js`) only adds the viewer, uploads and picking.
//!
//! Every link is an absolute path under the prefix, built from the decoded segments, so a
//! folder asked for without its trailing slash draws the same page. Each grid item is a plain
//! `<a href>` to the file's own path: middle-click, "open in new tab" and "save link as" get
//! the original bytes; a plain click opens the viewer. A folder of 10,000 items is cut in
//! pages of [`PAGE_SIZE`] (`?page=N`), and the thumbnails load lazily as they scroll in.

use std::time::SystemTime;

use maud::{DOCTYPE, Markup, html};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::catalog::{Entry, FileInfo};

/// Items (folders and files) on one page: about 60 KB of HTML.
pub const PAGE_SIZE: usize = 200;

/// The side of the square thumbnails the grid asks for, in pixels (twice the CSS size, for
/// high-density screens).
pub const THUMB_SIDE: u32 = 256;

/// What a path segment may hold unescaped in an `href` (RFC 3986 pchar, less what HTML or our
/// own routing reads specially).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'\'');

/// `/a%20b/c` for `["a b", "c"]`: segments escaped and joined, each after a `/`.
pub fn encode_path(segments: &[String]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", utf8_percent_encode(s, SEGMENT)))
        .collect()
}

/// What the page offers besides browsing, from the folder and the user's rights.
#[derive(Debug, Clone, Copy, Default)]
pub struct Controls {
    /// Files can be uploaded here (an album or `/upload`, a writable server, a user who may
    /// write).
    pub upload: bool,
    /// "New album" (MKCOL): the `/album` folder, with the same rights.
    pub new_album: bool,
    /// The picking panel: the `/picked` folder, for a user who may write (picking changes
    /// nothing in the library, so a read-only server still offers it).
    pub pick: bool,
    /// "Import into an album" beside each set: picking rights and a writable server.
    pub import: bool,
}

/// One folder's page, as the stage asked for it.
pub struct Page<'a> {
    /// `[webdav] prefix` (`""` or `/a/b`).
    pub prefix: &'a str,
    /// The folder's decoded path segments.
    pub segments: &'a [String],
    pub entries: &'a [Entry],
    /// 1-based page number asked for (clamped).
    pub page: usize,
    pub controls: Controls,
}

impl Page<'_> {
    /// The page's HTML.
    pub fn render(&self) -> String {
        let folders: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| matches!(e, Entry::Dir { .. }))
            .collect();
        let files: Vec<&FileInfo> = self
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::File(f) => Some(f),
                Entry::Dir { .. } => None,
            })
            .collect();
        let total = folders.len() + files.len();
        let pages = total.div_ceil(PAGE_SIZE).max(1);
        let page = self.page.clamp(1, pages);
        let from = (page - 1) * PAGE_SIZE;
        let to = (from + PAGE_SIZE).min(total);
        // Folders first, then files, in the folder's own order; a page is a window on that.
        let shown_folders = &folders[from.min(folders.len())..to.min(folders.len())];
        let shown_files =
            &files[from.saturating_sub(folders.len())..to.saturating_sub(folders.len())];
        let here = format!("{}{}/", self.prefix, encode_path(self.segments));
        let title = self.segments.last().map_or("Google Photos", |s| s.as_str());
        let assets = format!("{}/_/assets", self.prefix);
        let c = self.controls;
        let markup: Markup = html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · gphotos-dav" }
                    link rel="icon" href=(format!("{assets}/icon.svg"));
                    link rel="stylesheet" href=(format!("{assets}/gallery.css"));
                    script src=(format!("{assets}/gallery.js")) defer {}
                }
                body data-prefix=(self.prefix) data-folder=(here) {
                    header {
                        nav.crumbs aria-label="Breadcrumbs" {
                            a href=(format!("{}/", self.prefix)) { "Photos" }
                            @for i in 0..self.segments.len() {
                                span.sep { "/" }
                                a href=(format!("{}{}/", self.prefix, encode_path(&self.segments[..=i]))) {
                                    (self.segments[i])
                                }
                            }
                        }
                        div.actions {
                            @if c.new_album {
                                form #new-album {
                                    input name="title" placeholder="Album title" required maxlength="500";
                                    button type="submit" { "New album" }
                                }
                            }
                            @if c.upload {
                                label.button #upload-label {
                                    "Upload…"
                                    input #upload type="file" multiple accept="image/*,video/*";
                                }
                            }
                            @if c.pick {
                                form #pick-form {
                                    input name="name" placeholder="Name of the new set" required maxlength="100";
                                    button type="submit" { "Pick from Google Photos" }
                                }
                            }
                        }
                    }
                    @if c.pick {
                        section #picks data-import=(if c.import { "1" } else { "0" }) {
                            div #pick-session hidden {}
                            ul #pick-sets {}
                        }
                    }
                    @if c.upload {
                        div #drop hidden { "Drop photos and videos here to upload them" }
                        ul #uploads {}
                    }
                    p.summary {
                        (folders.len()) " folders, " (files.len()) " files"
                        @if pages > 1 { " · page " (page) " of " (pages) }
                    }
                    @if !shown_folders.is_empty() {
                        ul.folders {
                            @for f in shown_folders {
                                li { a.folder href=(format!("{here}{}/", utf8_percent_encode(f.name(), SEGMENT))) { (f.name()) } }
                            }
                        }
                    }
                    @if !shown_files.is_empty() {
                        ul.grid #grid {
                            @for f in shown_files {
                                @let path = format!("{}{}", encode_path(self.segments), format_args!("/{}", utf8_percent_encode(&f.name, SEGMENT)));
                                @let kind = if f.mime_type.starts_with("video/") { "video" } else { "photo" };
                                li.item {
                                    a.tile href=(format!("{}{path}", self.prefix))
                                        data-kind=(kind)
                                        data-variant=(format!("{}/_/thumb{path}", self.prefix))
                                        data-name=(f.name) data-type=(f.mime_type) {
                                        img src=(format!("{}/_/thumb{path}?s={THUMB_SIDE}", self.prefix))
                                            loading="lazy" decoding="async" width="128" height="128" alt=(f.name);
                                        @if kind == "video" { span.badge { "▶" } }
                                        span.caption {
                                            span.name { (f.name) }
                                            span.meta { (date(f.created)) " · " (size(f.size)) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if total == 0 {
                        p.empty { "This folder is empty." }
                    }
                    @if pages > 1 {
                        nav.pages aria-label="Pages" {
                            @if page > 1 { a rel="prev" href=(format!("{here}?page={}", page - 1)) { "← Previous" } }
                            span { "Page " (page) " of " (pages) }
                            @if page < pages { a rel="next" href=(format!("{here}?page={}", page + 1)) { "Next →" } }
                        }
                    }
                }
            }
        };
        markup.into_string()
    }
}

/// `2024-05-01 14:03` (UTC).
fn date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

/// `1.2 MB`, `340 kB`, `12 B`.
fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", b / 1e9)
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", b / 1e6)
    } else if bytes >= 1_000 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> Entry {
        Entry::File(FileInfo {
            id: format!("id-{name}"),
            name: name.to_string(),
            mime_type: "image/jpeg".into(),
            created: SystemTime::UNIX_EPOCH,
            size: 1234,
            bearer_only: false,
        })
    }

    #[test]
    fn paths_are_escaped_and_absolute() {
        assert_eq!(
            encode_path(&["Trip 2024".into(), "a#b?.jpg".into()]),
            "/Trip%202024/a%23b%3F.jpg"
        );
        let entries = vec![file("a <b>.jpg")];
        let segments = vec!["album".to_string(), "Trip".to_string()];
        let html = Page {
            prefix: "/photos",
            segments: &segments,
            entries: &entries,
            page: 1,
            controls: Controls::default(),
        }
        .render();
        assert!(
            html.contains(r#"href="/photos/album/Trip/a%20%3Cb%3E.jpg""#),
            "{html}"
        );
        assert!(html.contains(r#"src="/photos/_/thumb/album/Trip/a%20%3Cb%3E.jpg?s=256""#));
        assert!(html.contains("a &lt;b&gt;.jpg"));
        assert!(html.contains(r#"<a href="/photos/album/">album</a>"#));
    }

    #[test]
    fn big_folders_come_in_pages() {
        let entries: Vec<Entry> = (0..10_000).map(|i| file(&format!("{i:05}.jpg"))).collect();
        let page = |n| {
            Page {
                prefix: "",
                segments: &[],
                entries: &entries,
                page: n,
                controls: Controls::default(),
            }
            .render()
        };
        let first = page(1);
        assert_eq!(first.matches("<li class=\"item\">").count(), PAGE_SIZE);
        assert!(first.len() < 200_000, "{} bytes", first.len());
        assert!(first.contains("00000.jpg") && !first.contains("00200.jpg"));
        assert!(first.contains(r#"href="/?page=2""#));
        let last = page(50);
        assert!(last.contains("09999.jpg") && last.contains(r#"href="/?page=49""#));
        // Past the end: the last page.
        assert_eq!(page(99), last);
    }
}
