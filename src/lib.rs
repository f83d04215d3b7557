//! gphotos-dav: a WebDAV server that exposes Google Photos as a network drive.
//!
//! The crate is layered; each layer only knows the one below it:
//! - [`clock`]: the process clock that tests move (quota gates, listing and URL ages).
//! - [`google`]: OAuth tokens, the Library API, the content host, typed errors.
//! - [`catalog`]: the file tree over a library (names, listings, sizes, caching).
//! - [`dav`]: dav-server's filesystem traits over the catalog.
//! - [`upload`]: the write path (PUT, MKCOL), batching item creation, local placeholders.
//! - [`server`]: configuration and the HTTP side: a stack of tower layers around dav-server.
//! - [`pick`]: the `pick` command's Picker API flow (create, poll, store, list, delete).
//! - [`doctor`]: checks a configuration end to end and says how to fix what fails.
//!
//! See `docs/architecture.md` for the path a PROPFIND and a GET take through them.
//!
//! The stand-in for Google that tests and the `demo` command run against is a crate of its own,
//! `gphotos-dav-emulator` (`emulator/`): nothing in this library knows it.

pub mod catalog;
pub mod clock;
pub mod dav;
pub mod doctor;
pub mod google;
pub mod metrics;
pub mod pick;
pub mod server;
pub mod upload;
