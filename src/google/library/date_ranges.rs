//! The whole library, fast: `mediaItems.search` over date ranges, several at once, instead of
//! one chain of `mediaItems.list` pages (issue #18).
//!
//! A chain cannot be parallelised: each page's token comes with the page before, so 100,000
//! items are 1,000 calls one after the other (20 s at 20 ms a call). Date-filtered searches
//! over ranges that together cover every date are independent chains, each of a few pages,
//! that can run side by side.
//!
//! How the ranges are found without listing everything first:
//!
//! 1. The first [`RangeLoading::chain_pages`] pages of `mediaItems.list`, as before: a library
//!    that ends there is listed with exactly the calls it always took (small libraries, and
//!    the economy tests, see no change).
//! 2. The oldest and the newest dated item: two searches over all dates with `pageSize` 1,
//!    oldest first and newest first, at once.
//! 3. That span cut into equal pieces, each searched (first page of 100). A piece whose first
//!    page says there is more (`nextPageToken`) and whose density (the days its first page
//!    covered) promises more than [`RangeLoading::range_pages`] pages is cut again, in
//!    proportion; otherwise its chain is followed to the end. A single day is never cut
//!    (the filter's finest unit): it stays one chain however long.
//!
//! **Edges.** Google matches a range against a date of its own choosing (the docs do not say
//! which calendar: the item's local capture date, the account's time zone, or UTC), which is
//! at most one day from the UTC date we see in `creationTime`. So correctness never depends on
//! which day an item falls on: the ranges always *partition* all dates (adjacent, not
//! overlapping, the first starting at 0001-01-01 and the last ending at 9999-12-31), so
//! every item matches exactly one of them whatever its calendar date; the UTC dates only
//! decide where cuts go. Items are de-duplicated by id at the end anyway (the pages of step 1,
//! and Google's repeated last entries).
//!
//! **What a date filter cannot see** (Google's filter guide): items uploaded without a capture
//! date, future-dated items, and items uploaded moments ago (filtered searches index them
//! late). The pages of step 1 hold the newest items, which covers the last two for up to
//! `chain_pages` pages' worth; the first is a documented limit of this approach, listed in
//! docs/google-fidelity.md ("Big libraries (#18)").

use std::collections::{HashSet, VecDeque};

use chrono::{Datelike, NaiveDate};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::{Value, json};

use super::{ITEM_PAGE_SIZE, LibraryClient};
use crate::google::error::GoogleError;
use crate::google::types::{MediaItem, MediaItemPage, Page};

/// How the whole library is loaded: when to switch from one chain to date ranges, and how
/// many searches run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangeLoading {
    /// Pages of `mediaItems.list` read first, one after the other; a library that ends within
    /// them is listed as one chain. 0: always one chain, never date ranges.
    pub chain_pages: usize,
    /// A range whose first page promises more pages than this is cut into smaller ranges.
    pub range_pages: usize,
    /// Searches in flight at once.
    pub concurrency: usize,
}

impl Default for RangeLoading {
    /// 10 pages (1,000 items) as one chain, ranges of about 5 pages, 10 searches at once: at
    /// 20 ms a call, 100,000 items took 0.18x the time of one chain (`benches/date_ranges.rs`:
    /// 4.6 s against 25 s), for 38% more calls (1,379 against 1,001: the last, short page of
    /// each range, and the first pages of ranges that were cut again).
    fn default() -> Self {
        RangeLoading {
            chain_pages: 10,
            range_pages: 5,
            concurrency: 10,
        }
    }
}

/// An inclusive range of dates, as the filter takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Days {
    start: NaiveDate,
    end: NaiveDate,
}

/// The first and last dates `google.type.Date` can hold.
fn first_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(1, 1, 1).expect("a valid date")
}
fn last_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(9999, 12, 31).expect("a valid date")
}

fn date_json(d: NaiveDate) -> Value {
    json!({"year": d.year(), "month": d.month(), "day": d.day()})
}

/// The days from `a` to `b`, both included (at least 1).
fn days_between(a: NaiveDate, b: NaiveDate) -> i64 {
    (b - a).num_days().max(0) + 1
}

/// `a / b` rounded up, for positive numbers.
fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1) / b
}

/// Cuts `range` into `n` adjacent pieces: `inner` (a part of `range`) in equal parts, the
/// first piece reaching down to `range.start` and the last up to `range.end`, so the pieces
/// still cover exactly `range`.
fn cut(range: Days, inner: Days, n: i64) -> Vec<Days> {
    let len = days_between(inner.start, inner.end);
    let n = n.clamp(1, len);
    let mut pieces = Vec::with_capacity(n as usize);
    let mut start = range.start;
    for i in 1..=n {
        let end = if i == n {
            range.end
        } else {
            inner.start + chrono::Duration::days(len * i / n - 1)
        };
        pieces.push(Days { start, end });
        start = end.succ_opt().unwrap_or(end);
    }
    pieces
}

/// What searching one range came to.
enum Outcome<T> {
    Items(Vec<T>),
    Cut(Vec<Days>),
}

impl LibraryClient {
    /// Every item of the library, newest first: the first pages as one `mediaItems.list`
    /// chain, then, for a library longer than that, concurrent date-range searches (see the
    /// module's docs). No item twice; the same items as [`LibraryClient::list_media_items`]
    /// for every item that has a capture date.
    pub async fn list_library(&self, how: RangeLoading) -> Result<Vec<MediaItem>, GoogleError> {
        self.list_library_into(how, |item| item).await
    }

    /// [`list_library`](Self::list_library), each item passed through `map` as its page
    /// arrives (pages of several searches at once, hence `Fn + Sync`): the catalog keeps
    /// 100,000 items as shared copies, and never holds them a second time as the plain
    /// items of the answer.
    pub async fn list_library_into<T, M>(
        &self,
        how: RangeLoading,
        map: M,
    ) -> Result<Vec<T>, GoogleError>
    where
        T: AsRef<MediaItem>,
        M: Fn(MediaItem) -> T + Sync,
    {
        if how.chain_pages == 0 {
            return self.list_media_items_into(&map).await;
        }
        let url = self.url("mediaItems");
        let mut items = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..how.chain_pages {
            let page: MediaItemPage = self
                .send("mediaItems.list", || {
                    self.list_request(&url, ITEM_PAGE_SIZE, token.as_deref())
                })
                .await?;
            let (page, next) = page.into_parts();
            items.extend(page.into_iter().map(&map));
            match next.filter(|t| !t.is_empty()) {
                Some(next) => token = Some(next),
                None => return Ok(dedupe(items)),
            }
        }

        let everything = Days {
            start: first_date(),
            end: last_date(),
        };
        let (oldest, newest) = futures::try_join!(
            self.range_page(everything, true, 1, None),
            self.range_page(everything, false, 1, None),
        )?;
        let dated = |page: MediaItemPage| {
            page.into_parts()
                .0
                .first()
                .and_then(|i| i.media_metadata.creation_time)
                .map(|t| t.date_naive())
        };
        let (Some(oldest), Some(newest)) = (dated(oldest), dated(newest)) else {
            // Nothing a date filter finds: only the chain can list this library.
            tracing::debug!("no dated items: the library is listed as one chain");
            items.extend(self.rest_of_list(&url, token, &map).await?);
            return Ok(dedupe(items));
        };
        // A day of margin each side: Google's calendar date is at most a day from UTC's.
        let span = Days {
            start: oldest.pred_opt().unwrap_or(oldest),
            end: newest.succ_opt().unwrap_or(newest),
        };
        let first_cut = (2 * how.concurrency.max(1)) as i64;
        let mut pending: VecDeque<Days> = cut(everything, span, first_cut).into();
        let mut in_flight = FuturesUnordered::new();
        let (mut ranges, mut cuts, mut found) = (0usize, 0usize, Vec::new());
        loop {
            while in_flight.len() < how.concurrency.max(1)
                && let Some(range) = pending.pop_front()
            {
                in_flight.push(self.search_range(range, span, how, &map));
            }
            let Some(outcome) = in_flight.next().await else {
                break;
            };
            match outcome? {
                Outcome::Items(list) => {
                    ranges += 1;
                    found.push(list);
                }
                Outcome::Cut(pieces) => {
                    cuts += 1;
                    pending.extend(pieces);
                }
            }
        }
        tracing::debug!(
            ranges,
            cuts,
            oldest = %oldest,
            newest = %newest,
            "listed the library by date ranges"
        );
        items.extend(found.into_iter().flatten());
        let mut items = dedupe(items);
        // Newest first, as mediaItems.list; items without a time last.
        items.sort_by_key(|i| std::cmp::Reverse(i.as_ref().media_metadata.creation_time));
        Ok(items)
    }

    /// One page of the search over `range`: oldest first or newest first.
    async fn range_page(
        &self,
        range: Days,
        oldest_first: bool,
        page_size: u32,
        token: Option<&str>,
    ) -> Result<MediaItemPage, GoogleError> {
        let url = self.url("mediaItems:search");
        let mut body = json!({
            "pageSize": page_size,
            "filters": {"dateFilter": {"ranges": [
                {"startDate": date_json(range.start), "endDate": date_json(range.end)}
            ]}},
        });
        if oldest_first {
            body["orderBy"] = json!("MediaMetadata.creation_time");
        }
        if let Some(token) = token {
            body["pageToken"] = json!(token);
        }
        self.send("mediaItems.search", || self.http.post(&url).json(&body))
            .await
    }

    /// The items of `range` (its chain followed to the end), or the pieces to search instead
    /// when its first page promises more than `how.range_pages` pages.
    async fn search_range<T>(
        &self,
        range: Days,
        span: Days,
        how: RangeLoading,
        map: &(impl Fn(MediaItem) -> T + Sync),
    ) -> Result<Outcome<T>, GoogleError> {
        let first = self.range_page(range, false, ITEM_PAGE_SIZE, None).await?;
        let (first, mut next) = first.into_parts();
        if next.is_some() && range.start < range.end {
            let dates: Vec<NaiveDate> = first
                .iter()
                .filter_map(|i| i.media_metadata.creation_time)
                .map(|t| t.date_naive())
                .collect();
            if let (Some(&newest), Some(&oldest)) = (dates.first(), dates.last()) {
                // Where this range still holds items: nothing newer than its newest (the
                // page is newest first), nothing outside the library's span.
                let inner = Days {
                    start: range.start.max(span.start),
                    end: range
                        .end
                        .min(newest.succ_opt().unwrap_or(newest))
                        .max(range.start.max(span.start)),
                };
                let per_page = days_between(oldest, newest.max(oldest));
                let pages = ceil_div(days_between(inner.start, inner.end), per_page);
                if pages > how.range_pages as i64 && inner.start < inner.end {
                    let n = ceil_div(pages, how.range_pages.max(1) as i64).clamp(2, 16);
                    return Ok(Outcome::Cut(cut(range, inner, n)));
                }
            }
        }
        let mut items: Vec<T> = first.into_iter().map(map).collect();
        while let Some(token) = next.filter(|t| !t.is_empty()) {
            let page = self
                .range_page(range, false, ITEM_PAGE_SIZE, Some(&token))
                .await?;
            let (more, after) = page.into_parts();
            items.extend(more.into_iter().map(map));
            next = after;
        }
        Ok(Outcome::Items(items))
    }

    /// The rest of a `mediaItems.list` chain from `token`.
    async fn rest_of_list<T>(
        &self,
        url: &str,
        mut token: Option<String>,
        map: &impl Fn(MediaItem) -> T,
    ) -> Result<Vec<T>, GoogleError> {
        let mut items = Vec::new();
        while let Some(t) = token.take() {
            let page: MediaItemPage = self
                .send("mediaItems.list", || {
                    self.list_request(url, ITEM_PAGE_SIZE, Some(&t))
                })
                .await?;
            let (page, next) = page.into_parts();
            items.extend(page.into_iter().map(map));
            token = next.filter(|t| !t.is_empty());
        }
        Ok(items)
    }
}

/// The items with the ids not seen before, in order (Google repeats entries at times, and
/// the first pages and the ranges overlap).
///
/// The ids are looked up in place (no copy of each id), and the kept items stay where they
/// are: 100,000 items are never held twice.
fn dedupe<T: AsRef<MediaItem>>(mut items: Vec<T>) -> Vec<T> {
    let before = items.len();
    let first: Vec<bool> = {
        let mut seen = HashSet::with_capacity(items.len());
        items
            .iter()
            .map(|i| seen.insert(i.as_ref().id.as_str()))
            .collect()
    };
    let mut first = first.into_iter();
    items.retain(|_| first.next().unwrap_or(true));
    let out = items;
    if out.len() < before {
        tracing::debug!(
            repeated = before - out.len(),
            "dropped entries the library listing already had"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    /// Pieces are adjacent and cover exactly the range, whatever the inner part and count.
    #[test]
    fn cuts_partition_the_range() {
        let everything = Days {
            start: first_date(),
            end: last_date(),
        };
        for (inner, n) in [
            (
                Days {
                    start: d(2018, 1, 1),
                    end: d(2022, 12, 31),
                },
                20,
            ),
            (
                Days {
                    start: d(2020, 2, 28),
                    end: d(2020, 3, 1),
                },
                16,
            ),
            (
                Days {
                    start: d(2020, 2, 28),
                    end: d(2020, 2, 28),
                },
                5,
            ),
        ] {
            let pieces = cut(everything, inner, n);
            assert_eq!(pieces.first().unwrap().start, everything.start);
            assert_eq!(pieces.last().unwrap().end, everything.end);
            for pair in pieces.windows(2) {
                assert_eq!(pair[0].end.succ_opt().unwrap(), pair[1].start, "{pieces:?}");
                assert!(pair[0].start <= pair[0].end, "{pieces:?}");
            }
            assert!(pieces.len() as i64 <= n.min(days_between(inner.start, inner.end)));
        }
    }
}
