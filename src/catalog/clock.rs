//! The catalog's notion of time: the process clock of [`crate::clock`], shared with the quota
//! gates of `google::quota` (one offset moves both), re-exported here for the catalog's callers.

pub use crate::clock::Clock;
