//! The `quota` table: requests counted per Pacific-time day and bucket.
//!
//! Google counts its daily quotas per day in Pacific time, not per 24 hours and not in the
//! server's time zone, so the counts are kept under the Pacific date they belong to. They
//! survive a restart: without them a restarted server would think the day's quota untouched and
//! could run into Google's 429s again. A row per (day, bucket): `api` (Library API requests),
//! `media` (download-URL requests), `picker` (Picker API requests), `probes` (the size probes
//! among the `media` requests: what the probe budget spent), and two flags stored as counts,
//! `exhausted` and `media_exhausted`, that say a daily quota was used up that day (so the gate
//! stays closed until Pacific midnight after a restart too); on a family server, each library's
//! store also keeps its own counts, `share_api`, `share_media`, `share_probes` (what its
//! `daily_share` bounds, see `google::quota::Share`). Rows older than a month
//! are deleted as new ones are added.

use chrono::NaiveDate;
use rusqlite::params;

use super::Store;
use crate::google::quota::SHARE_KEYS;

/// Usage counted for one Pacific-time day (rows of `quota`): Google's quotas are daily, so
/// the counts must survive a restart within the day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUsage {
    /// Library API requests.
    pub api: u64,
    /// Download-URL (content host) requests.
    pub media: u64,
    /// Picker API requests.
    pub picker: u64,
    /// Size-probe requests (also in `media`): what the day's probe budget has spent.
    pub probes: u64,
    /// The Library API's daily quota was used up that day.
    pub exhausted: bool,
    /// The daily quota of download-URL requests was used up that day.
    pub media_exhausted: bool,
    /// On a family server, this library's own Library API requests, media requests and size
    /// probes (rows `share_api`, `share_media`, `share_probes`): what its `daily_share`
    /// bounds.
    pub share: [u64; 3],
}

impl Store {
    /// What was used on `day` (a Pacific-time date).
    pub async fn usage(&self, day: NaiveDate) -> DayUsage {
        let day = day.to_string();
        self.call(move |conn| {
            let mut stmt = conn.prepare("SELECT bucket, used FROM quota WHERE day = ?1")?;
            let mut usage = DayUsage::default();
            let rows = stmt.query_map([day], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?;
            for row in rows {
                let (bucket, used) = row?;
                match bucket.as_str() {
                    "api" => usage.api = used,
                    "media" => usage.media = used,
                    "picker" => usage.picker = used,
                    "probes" => usage.probes = used,
                    "exhausted" => usage.exhausted = used > 0,
                    "media_exhausted" => usage.media_exhausted = used > 0,
                    other => {
                        if let Some(i) = SHARE_KEYS.iter().position(|k| *k == other) {
                            usage.share[i] = used;
                        }
                    }
                }
            }
            Ok(usage)
        })
        .await
        .unwrap_or_default()
    }

    /// Adds `n` to a day's count in `bucket` (`api`, `media`, `picker`, `probes`,
    /// `exhausted`, `media_exhausted`), without waiting.
    pub fn add_usage(&self, day: NaiveDate, bucket: &'static str, n: u64) {
        let day = day.to_string();
        self.submit("count quota", move |conn| {
            conn.execute(
                "INSERT INTO quota (day, bucket, used) VALUES (?1, ?2, ?3)
                 ON CONFLICT (day, bucket) DO UPDATE SET used = used + excluded.used",
                params![day, bucket, n as i64],
            )?;
            // Old days are of no use; keep a month for looking back.
            conn.execute("DELETE FROM quota WHERE day < date(?1, '-31 days')", [day])
                .map(drop)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn quota_adds_up_per_day() {
        let store = Store::in_memory();
        let day: NaiveDate = "2026-11-25".parse().unwrap();
        store.add_usage(day, "api", 3);
        store.add_usage(day, "api", 2);
        store.add_usage(day, "media", 7);
        store.add_usage(day, "picker", 4);
        store.add_usage(day, "probes", 6);
        store.add_usage(day.succ_opt().unwrap(), "api", 1);
        assert_eq!(
            store.usage(day).await,
            DayUsage {
                api: 5,
                media: 7,
                picker: 4,
                probes: 6,
                exhausted: false,
                media_exhausted: false,
                share: [0; 3],
            }
        );
        store.add_usage(day, "share_media", 2);
        store.add_usage(day, "share_probes", 1);
        assert_eq!(store.usage(day).await.share, [0, 2, 1]);
        store.add_usage(day, "exhausted", 1);
        assert!(store.usage(day).await.exhausted);
        assert!(!store.usage(day).await.media_exhausted);
        store.add_usage(day, "media_exhausted", 1);
        assert!(store.usage(day).await.media_exhausted);
        assert!(!store.usage(day.succ_opt().unwrap()).await.media_exhausted);
    }
}
