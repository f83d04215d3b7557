//! The buckets requests are counted in, and what the store keeps of them.

use chrono::NaiveDate;

/// What is counted against a quota, each with its own gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    /// Library API requests (`[google] daily_quota` per day).
    Api,
    /// Requests to download URLs: size probes and downloads (`[google] daily_media_quota`).
    Media,
    /// Picker API requests (Google: 100,000 per minute, no daily quota; counted per day here
    /// for the metrics).
    Picker,
}

pub(super) const BUCKETS: [Bucket; 3] = [Bucket::Api, Bucket::Media, Bucket::Picker];

impl Bucket {
    /// The bucket's name in the metrics and the store.
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Api => "api",
            Bucket::Media => "media",
            Bucket::Picker => "picker",
        }
    }

    /// The store's name for "the daily quota was used up that day" (`exhausted` is the Library
    /// API's, as stores written before the other buckets had gates call it).
    pub fn exhausted_key(self) -> &'static str {
        match self {
            Bucket::Api => "exhausted",
            Bucket::Media => "media_exhausted",
            Bucket::Picker => "picker_exhausted",
        }
    }

    /// What the bucket counts, for log lines and error messages.
    pub(super) fn what(self) -> &'static str {
        match self {
            Bucket::Api => "Photos Library API calls",
            Bucket::Media => "media requests (downloads and size probes of download URLs)",
            Bucket::Picker => "Photos Picker API calls",
        }
    }

    /// The configuration key of the bucket's daily quota, if it has one.
    pub(super) fn config_key(self) -> Option<&'static str> {
        match self {
            Bucket::Api => Some("daily_quota"),
            Bucket::Media => Some("daily_media_quota"),
            Bucket::Picker => None,
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }
}

/// Where counts are written (the metadata store): `add(day, key, n)` with key a bucket's
/// [`Bucket::name`] or [`Bucket::exhausted_key`], or [`super::PROBES_KEY`].
pub type UsageLog = Box<dyn Fn(NaiveDate, &'static str, u64) + Send + Sync>;

/// What the store remembers of one day, handed to [`QuotaGate::restore`] at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Remembered {
    pub api: u64,
    pub media: u64,
    pub picker: u64,
    /// Size-probe requests (also in `media`), the probe budget's count.
    pub probes: u64,
    /// The daily quota of the Library API was used up that day.
    pub api_exhausted: bool,
    /// The daily quota of media requests was used up that day.
    pub media_exhausted: bool,
}
