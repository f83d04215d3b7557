//! Signed download links: `/d/<item id>/<file name>?exp=<unix time>&sign=<signature>`.
//!
//! With the `use_proxy_url` policy the WebDAV front answers a GET with a 302 to such a link on
//! `[webdav] down_proxy_url`, a byte node (any gphotos-dav instance with the same `sign_key`).
//! The link is its own credential: no WebDAV login is asked for, the signature is checked
//! instead. It is an HMAC-SHA256 under the shared key over the item id, the file name and the
//! expiry, in base64url without padding, so none of them can be changed, and the link works
//! until `exp` only.
//!
//! Every instance answers `/d/...` (under its `[webdav] prefix`, like the tree) before the
//! tree and before asking for WebDAV credentials, so the tree's root never has a folder named
//! `d` ([`crate::catalog::RESERVED_ROOT_NAMES`]). A link that fails any check is a
//! bare 403: which check failed is only logged (at debug level), never told to the client.
//! A valid link streams like the tree does (Range, conditional requests, resume), through
//! a second dav-server handler over [`ByIdFs`], a filesystem of files addressed by id that
//! answers only GET and HEAD.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use dav_server::{DavHandler, DavMethodSet};
use hmac::{Hmac, Mac};
use http::{HeaderValue, Method, Request, Response, StatusCode, Uri};
use sha2::Sha256;

use super::handler;
use super::response::{Body, READ_BUF_SIZE, text_response, upstream_failure};
use crate::catalog::Catalog;
use crate::dav::by_id::ByIdFs;

/// The path signed links live under (after the `[webdav] prefix`), on every instance.
pub const PREFIX: &str = "/d/";

/// A key shorter than this is refused at start.
pub const MIN_KEY_LEN: usize = 32;

/// Separates this use of the key from any other (a future link format gets another tag).
const DOMAIN: &[u8] = b"gphotos-dav signed link v1\n";
/// The tag of a family server's links, which name their library (`/d/<mount>/<id>/<name>`):
/// a link of one library never verifies as another's, nor as a single library's.
const DOMAIN_LIBRARY: &[u8] = b"gphotos-dav signed link v1 library\n";

/// The shared secret that signs links. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SignKey(Vec<u8>);

impl SignKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        SignKey(bytes.into())
    }

    /// A key file's content, without the whitespace around it (a trailing newline).
    pub fn from_file_content(content: &[u8]) -> Self {
        SignKey(content.trim_ascii().to_vec())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn mac(&self, library: Option<&str>, id: &str, name: &str, exp: u64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        // Lengths first, so no two (id, name) pairs make the same message.
        let parts: &[&str] = match library {
            None => {
                mac.update(DOMAIN);
                &[id, name]
            }
            Some(library) => {
                mac.update(DOMAIN_LIBRARY);
                &[library, id, name]
            }
        };
        for part in parts {
            mac.update(format!("{}:", part.len()).as_bytes());
            mac.update(part.as_bytes());
            mac.update(b"\n");
        }
        mac.update(exp.to_string().as_bytes());
        mac
    }

    /// The signature of a link, base64url without padding.
    pub fn sign(&self, id: &str, name: &str, exp: u64) -> String {
        self.sign_for(None, id, name, exp)
    }

    /// The signature of a link of `library` (a family server's mount), or of a single
    /// library's link (None).
    pub fn sign_for(&self, library: Option<&str>, id: &str, name: &str, exp: u64) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(library, id, name, exp).finalize().into_bytes())
    }

    /// Whether `signature` is this key's signature of the link, compared in constant time.
    pub fn verify(&self, id: &str, name: &str, exp: u64, signature: &str) -> bool {
        self.verify_for(None, id, name, exp, signature)
    }

    /// [`SignKey::verify`] for a link of `library`.
    pub fn verify_for(
        &self,
        library: Option<&str>,
        id: &str,
        name: &str,
        exp: u64,
        signature: &str,
    ) -> bool {
        match URL_SAFE_NO_PAD.decode(signature) {
            Ok(bytes) => self
                .mac(library, id, name, exp)
                .verify_slice(&bytes)
                .is_ok(),
            Err(_) => false,
        }
    }
}

impl std::fmt::Debug for SignKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignKey(<redacted>)")
    }
}

impl<'de> serde::Deserialize<'de> for SignKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SignKey::new(String::deserialize(d)?.into_bytes()))
    }
}

/// Path segments are percent-encoded except for RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The link to item `id`, shown as `name`, valid until `exp` (Unix seconds), under `base`
/// (`down_proxy_url`, without a trailing slash); on a family server `library` is the item's
/// library, named in the path and in the signature (`/d/<mount>/<id>/<name>`).
pub fn link(
    base: &str,
    key: &SignKey,
    library: Option<&str>,
    id: &str,
    name: &str,
    exp: u64,
) -> String {
    let mount = library.map(|m| format!("{m}/")).unwrap_or_default();
    format!(
        "{}{PREFIX}{mount}{}/{}?exp={exp}&sign={}",
        base.trim_end_matches('/'),
        percent_encoding::utf8_percent_encode(id, SEGMENT),
        percent_encoding::utf8_percent_encode(name, SEGMENT),
        key.sign_for(library, id, name, exp)
    )
}

/// Answers `/d/...`: checks the link, then streams the item.
#[derive(Clone)]
pub struct SignedRoute {
    key: Option<SignKey>,
    catalog: Catalog,
    handler: DavHandler,
    /// `<[webdav] prefix>/d/` (`/d/<mount>/` on a family server): the paths this route owns.
    base: String,
    /// The library whose links these are (a family server's mount), signed with the link.
    library: Option<String>,
}

impl SignedRoute {
    /// Links under `prefix` (`""` or `/a/b`), of `library` on a family server; without a key
    /// every link is refused.
    pub fn new(
        catalog: Catalog,
        key: Option<SignKey>,
        prefix: &str,
        library: Option<&str>,
    ) -> Self {
        let base = match library {
            None => format!("{prefix}{PREFIX}"),
            Some(mount) => format!("{prefix}{PREFIX}{mount}/"),
        };
        let handler = DavHandler::builder()
            .filesystem(Box::new(ByIdFs::new(catalog.clone())))
            .methods(DavMethodSet::HTTP_RO)
            .strip_prefix(base.trim_end_matches('/'))
            .read_buf_size(READ_BUF_SIZE)
            .build_handler();
        SignedRoute {
            key,
            catalog,
            handler,
            base,
            library: library.map(str::to_string),
        }
    }

    /// `<[webdav] prefix>/d/`: every path starting so is a link (and so never reaches the
    /// WebDAV tree; the router sends it here).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Answers one request for a link: 405 but for GET and HEAD, a bare 403 for a link that
    /// fails a check, else the item's bytes.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let method = req.method().clone();
        if method != Method::GET && method != Method::HEAD {
            let mut resp = text_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "download links answer GET and HEAD only\n",
            );
            resp.headers_mut()
                .insert("Allow", HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let id = match self.check(req.uri()) {
            Ok(id) => id,
            Err(why) => {
                // The reason stays here: a client probing links learns nothing from it.
                tracing::debug!(%method, reason = why, "refusing a download link");
                return text_response(StatusCode::FORBIDDEN, "forbidden\n");
            }
        };
        tracing::debug!(%method, item = %id, "serving a signed download link");
        let path = format!("{}{id}/…", self.base);
        let (response, failure) = handler::run(&self.handler, req).await;
        let response = match response {
            Ok(response) => response,
            Err(()) => return handler::failed_before_bytes(&method, &path, failure),
        };
        let status = response.status();
        match failure {
            Some(err) if status.is_client_error() || status.is_server_error() => {
                upstream_failure(&method, &path, &err)
            }
            _ => response,
        }
    }

    /// The item id of a valid, unexpired link; otherwise why not.
    fn check(&self, uri: &Uri) -> Result<String, &'static str> {
        let key = self.key.as_ref().ok_or("no sign_key is configured here")?;
        let rest = uri.path().strip_prefix(&self.base).ok_or("not a link")?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .ok()
                .filter(|s| !s.is_empty())
        };
        let (id, name) = match rest.split('/').collect::<Vec<_>>().as_slice() {
            [id, name] => (
                decode(id).ok_or("malformed id")?,
                decode(name).ok_or("malformed name")?,
            ),
            _ => return Err("not of the form /d/<id>/<name>"),
        };
        let (mut exp, mut sign) = (None, None);
        for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            match k.as_ref() {
                "exp" if exp.is_none() => exp = Some(v.into_owned()),
                "sign" if sign.is_none() => sign = Some(v.into_owned()),
                _ => {}
            }
        }
        let exp: u64 = exp
            .and_then(|e| e.parse().ok())
            .ok_or("missing or malformed exp")?;
        let sign = sign.ok_or("missing sign")?;
        if !key.verify_for(self.library.as_deref(), &id, &name, exp, &sign) {
            return Err("bad signature");
        }
        if exp < self.catalog.clock().unix_now() {
            return Err("expired");
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SignKey {
        SignKey::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn signatures_cover_id_name_and_expiry() {
        let k = key();
        let s = k.sign("ID1", "IMG 1.jpg", 1000);
        assert_eq!(s.len(), 43, "32 bytes in base64url without padding");
        assert!(k.verify("ID1", "IMG 1.jpg", 1000, &s));
        assert!(!k.verify("ID2", "IMG 1.jpg", 1000, &s));
        assert!(!k.verify("ID1", "IMG 2.jpg", 1000, &s));
        assert!(!k.verify("ID1", "IMG 1.jpg", 1001, &s));
        // Moving text between id and name changes the message.
        assert!(!k.verify("ID1I", "MG 1.jpg", 1000, &s));
        assert!(!k.verify("ID1", "IMG 1.jpg", 1000, "not base64!"));
        assert!(!k.verify("ID1", "IMG 1.jpg", 1000, &s[..42]));
        let other = SignKey::new(b"another key, another key, another".to_vec());
        assert!(!other.verify("ID1", "IMG 1.jpg", 1000, &s));
    }

    #[test]
    fn links_encode_the_name_and_are_header_values() {
        let k = key();
        let l = link(
            "https://bytes.example/",
            &k,
            None,
            "AF1Q-x_",
            "Été 1/2 #?.jpg",
            77,
        );
        let sign = k.sign("AF1Q-x_", "Été 1/2 #?.jpg", 77);
        assert_eq!(
            l,
            format!(
                "https://bytes.example/d/AF1Q-x_/%C3%89t%C3%A9%201%2F2%20%23%3F.jpg?exp=77&sign={sign}"
            )
        );
        assert!(HeaderValue::from_str(&l).is_ok());
        // A family server's link names its library, in the path and in the signature.
        let l = link("https://b.example", &k, Some("alice"), "ID1", "a.jpg", 77);
        let sign = k.sign_for(Some("alice"), "ID1", "a.jpg", 77);
        assert_eq!(
            l,
            format!("https://b.example/d/alice/ID1/a.jpg?exp=77&sign={sign}")
        );
        assert!(k.verify_for(Some("alice"), "ID1", "a.jpg", 77, &sign));
        assert!(!k.verify_for(Some("bob"), "ID1", "a.jpg", 77, &sign));
        assert!(!k.verify("ID1", "a.jpg", 77, &sign));
        assert!(!k.verify_for(
            Some("alice"),
            "ID1",
            "a.jpg",
            77,
            &k.sign("ID1", "a.jpg", 77)
        ));
    }

    #[test]
    fn key_debug_is_redacted_and_files_are_trimmed() {
        let k = SignKey::from_file_content(b"  secret-secret-secret\n");
        assert_eq!(k, SignKey::new(b"secret-secret-secret".to_vec()));
        assert_eq!(format!("{k:?}"), "SignKey(<redacted>)");
    }
}
