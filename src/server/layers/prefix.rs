//! The served prefix (`[webdav] prefix`), first stage of the tree's stack: a request outside
//! it is answered here; one inside gets its [`Target`], the path inside the tree that every
//! later stage reads instead of stripping the prefix again.
//!
//! Requests outside the prefix: OPTIONS still answers (Windows sends `OPTIONS /` to the host
//! root before mapping a deeper URL, and fails the mapping otherwise); the rest is a 404 that
//! says where the tree is.

use dav_server::davpath::DavPath;
use http::{HeaderValue, Method, StatusCode};

use super::stage::{Inner, Next, Req, Res, Stage};
use crate::catalog::Catalog;
use crate::dav::segments;
use crate::server::response::text_response;

/// The path the tree is served under: `""` or a normalised `/a/b` (see the config).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prefix(String);

impl Prefix {
    /// `prefix` is `""` or a normalised `/a/b`.
    pub fn new(prefix: &str) -> Self {
        Prefix(prefix.to_string())
    }

    /// The prefix as configured (`""` for `/`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The request path inside the tree, or None when it lies outside the prefix.
    pub fn tree_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.0.is_empty() {
            return Some(path);
        }
        match path.strip_prefix(&self.0) {
            Some("") => Some("/"),
            Some(rest) if rest.starts_with('/') => Some(rest),
            _ => None,
        }
    }
}

/// Where a request points, as the prefix stage found it (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The path as the client sent it (still percent-encoded), for log lines.
    pub path: String,
    /// The same path inside the tree, the prefix stripped (`/` for the prefix itself).
    pub tree: String,
    /// The folder of the library's tree that `tree` starts from, as decoded segments: empty,
    /// except for a user rooted deeper than a library's folder (`root = "/alice/album/Trip"`
    /// gives `["album", "Trip"]`, set by `server::family`). The paths the client sees, and
    /// dav-server's hrefs, stay relative to it; only the catalog is asked the whole path
    /// ([`Target::segments`]).
    pub root: Vec<String>,
}

impl Target {
    /// The target of a request that passed the prefix stage; the tree's root when it did not
    /// (only a stack assembled without that stage).
    pub fn of(req: &Req) -> Target {
        req.extensions()
            .get::<Target>()
            .cloned()
            .unwrap_or_else(|| {
                let path = req.uri().path().to_string();
                Target {
                    tree: path.clone(),
                    path,
                    root: Vec::new(),
                }
            })
    }

    /// The catalog's path of the target: its root's segments, then the decoded segments of
    /// its tree path; None when the path cannot name anything (bad escapes, not UTF-8).
    pub fn segments(&self) -> Option<Vec<String>> {
        let path = DavPath::new(&self.tree).ok()?;
        let mut segs = self.root.clone();
        segs.extend(segments(&path).ok()?);
        Some(segs)
    }

    /// Whether the target names a folder. Unknown paths are not folders (the handler then
    /// answers 404 itself).
    pub async fn is_collection(&self, catalog: &Catalog) -> bool {
        if self.tree.ends_with('/') {
            return true;
        }
        match self.segments() {
            Some(segs) => catalog.is_dir(&segs).await.unwrap_or(false),
            None => false,
        }
    }
}

/// The prefix stage (see the module docs).
#[derive(Debug, Clone)]
pub struct PrefixStage {
    prefix: Prefix,
}

impl PrefixStage {
    /// Serves the tree under `prefix`.
    pub fn new(prefix: Prefix) -> Self {
        PrefixStage { prefix }
    }
}

impl Stage for PrefixStage {
    async fn handle<S: Inner>(&self, mut req: Req, next: Next<S>) -> Res {
        let path = req.uri().path().to_string();
        let Some(tree) = self.prefix.tree_path(&path).map(str::to_string) else {
            return outside(req.method(), &self.prefix);
        };
        req.extensions_mut().insert(Target {
            path,
            tree,
            root: Vec::new(),
        });
        next.run(req).await
    }
}

/// The answer to a request outside the prefix.
fn outside(method: &Method, prefix: &Prefix) -> Res {
    if method == Method::OPTIONS {
        let mut resp = text_response(StatusCode::OK, "");
        let h = resp.headers_mut();
        h.insert("DAV", HeaderValue::from_static("1"));
        h.insert("MS-Author-Via", HeaderValue::from_static("DAV"));
        h.insert("Allow", HeaderValue::from_static("OPTIONS"));
        return resp;
    }
    text_response(
        StatusCode::NOT_FOUND,
        &format!("gphotos-dav serves its tree under {}/\n", prefix.as_str()),
    )
}
