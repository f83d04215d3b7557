//! The stages of the HTTP stack, one file each, named in the order a request meets them
//! (`server::stack` assembles them and is the place to read that order).
//!
//! Every request: [`access_log`], [`catch_panic`], [`guard`] (path and headers), then the
//! router. The tree's requests, below the router: [`prefix`], [`methods`], [`auth`],
//! [`body_guard`], [`probes`], [`depth`], [`folder_slash`], [`gallery`], [`writes`], and the response
//! stages [`conditionals`], [`content_length`], [`dav_class`], [`etag_quotes`] around the DAV
//! handler (`server::handler`). [`stage`] is what each stage is made of.

pub mod access_log;
pub mod auth;
pub mod body_guard;
pub mod catch_panic;
pub mod conditionals;
pub mod content_length;
pub mod dav_class;
pub mod depth;
pub mod etag_quotes;
pub mod folder_slash;
pub mod gallery;
pub mod guard;
pub mod methods;
pub mod prefix;
pub mod probes;
pub mod stage;
pub mod writes;
