//! `POST /v1/mediaItems:search`: by album, or by filters over the whole library.
//!
//! The request body is decoded strictly (unknown fields are rejected, as Google's JSON
//! front end does), and every documented constraint answers 400 INVALID_ARGUMENT, so a
//! client that builds an invalid search fails here rather than only against Google.

use std::ops::Range;

use chrono::{Datelike, FixedOffset, NaiveDate, NaiveTime};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{
    INVALID_ARGUMENT, ITEMS_DEFAULT_PAGE, ITEMS_MAX_PAGE, Int32, Query, authorize,
    decode_page_token, encode_page_token, items_page, listing_json, media_item_json, page_size,
};
use super::fixtures::{FixtureItem, Library, MediaKind};
use super::reply::Reply;
use super::{Inner, Req};

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SearchRequest {
    album_id: Option<String>,
    page_size: Option<Int32>,
    page_token: Option<String>,
    filters: Option<Filters>,
    order_by: Option<String>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filters {
    date_filter: Option<DateFilter>,
    content_filter: Option<ContentFilter>,
    media_type_filter: Option<MediaTypeFilter>,
    feature_filter: Option<FeatureFilter>,
    include_archived_media: Option<bool>,
    exclude_non_app_created_data: Option<bool>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DateFilter {
    dates: Option<Vec<DateJson>>,
    ranges: Option<Vec<DateRangeJson>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DateJson {
    year: Option<Int32>,
    month: Option<Int32>,
    day: Option<Int32>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct DateRangeJson {
    start_date: Option<DateJson>,
    end_date: Option<DateJson>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ContentFilter {
    included_content_categories: Option<Vec<String>>,
    excluded_content_categories: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MediaTypeFilter {
    media_types: Option<Vec<String>>,
}

#[derive(Deserialize, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FeatureFilter {
    included_features: Option<Vec<String>>,
}

const CONTENT_CATEGORIES: &[&str] = &[
    "NONE",
    "LANDSCAPES",
    "RECEIPTS",
    "CITYSCAPES",
    "LANDMARKS",
    "SELFIES",
    "PEOPLE",
    "PETS",
    "WEDDINGS",
    "BIRTHDAYS",
    "DOCUMENTS",
    "TRAVEL",
    "ANIMALS",
    "FOOD",
    "SPORT",
    "NIGHT",
    "PERFORMANCES",
    "WHITEBOARDS",
    "SCREENSHOTS",
    "UTILITY",
    "ARTS",
    "CRAFTS",
    "FASHION",
    "HOUSES",
    "GARDENS",
    "FLOWERS",
    "HOLIDAYS",
];

/// A `google.type.Date` as the date filter accepts it: 0 means "unspecified".
#[derive(Clone, Copy, Debug)]
struct PartialDate {
    year: i32,
    month: u32,
    day: u32,
}

impl PartialDate {
    fn parse(date: &DateJson) -> Result<PartialDate, Reply> {
        let get = |v: &Option<Int32>, name: &str| v.as_ref().map_or(Ok(0), |v| v.value(name));
        let (year, month, day) = (
            get(&date.year, "year")?,
            get(&date.month, "month")?,
            get(&date.day, "day")?,
        );
        let invalid = || Reply::invalid_argument("The date filter contains an invalid date.");
        if !(0..=9999).contains(&year) || !(0..=12).contains(&month) || !(0..=31).contains(&day) {
            return Err(invalid());
        }
        // Allowed: full date, year+month, year alone, month+day (any year).
        if month == 0 && (year == 0 || day != 0) {
            return Err(invalid());
        }
        let (year, month, day) = (year as i32, month as u32, day as u32);
        if day != 0 {
            // Check the day exists; a leap year stands in for "any year".
            let check_year = if year == 0 { 2000 } else { year };
            NaiveDate::from_ymd_opt(check_year, month, day).ok_or_else(invalid)?;
        }
        Ok(PartialDate { year, month, day })
    }

    fn matches(&self, date: NaiveDate) -> bool {
        (self.year == 0 || self.year == date.year())
            && (self.month == 0 || self.month == date.month())
            && (self.day == 0 || self.day == date.day())
    }

    /// The first (`end == false`) or last day this partial date covers; ranges need a year.
    fn bound(&self, end: bool) -> Option<NaiveDate> {
        if self.year == 0 {
            return None;
        }
        let month = match (self.month, end) {
            (0, false) => 1,
            (0, true) => 12,
            (m, _) => m,
        };
        match (self.day, end) {
            (0, false) => NaiveDate::from_ymd_opt(self.year, month, 1),
            (0, true) => {
                let (y, m) = if month == 12 {
                    (self.year + 1, 1)
                } else {
                    (self.year, month + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
            }
            (d, _) => NaiveDate::from_ymd_opt(self.year, month, d),
        }
    }
}

/// The validated filters, ready to apply to items.
struct Matcher {
    dates: Vec<PartialDate>,
    ranges: Vec<(NaiveDate, NaiveDate)>,
    media_type: Option<MediaKind>,
    favorites_only: bool,
    /// Fixture items carry no content categories, so including any category matches none.
    requires_category: bool,
    /// The calendar items' dates are read in (`Emulator::set_date_filter_offset`).
    zone: FixedOffset,
}

impl Matcher {
    fn new(filters: &Filters) -> Result<Matcher, Reply> {
        let mut matcher = Matcher {
            dates: Vec::new(),
            ranges: Vec::new(),
            media_type: None,
            favorites_only: false,
            requires_category: false,
            zone: FixedOffset::east_opt(0).expect("UTC"),
        };
        if let Some(date_filter) = &filters.date_filter {
            let dates = date_filter.dates.as_deref().unwrap_or_default();
            let ranges = date_filter.ranges.as_deref().unwrap_or_default();
            if dates.len() > 5 || ranges.len() > 5 {
                return Err(Reply::invalid_argument(
                    "A date filter can contain at most 5 dates and 5 date ranges.",
                ));
            }
            for date in dates {
                matcher.dates.push(PartialDate::parse(date)?);
            }
            for range in ranges {
                let invalid =
                    || Reply::invalid_argument("The date filter contains an invalid range.");
                let (Some(start), Some(end)) = (&range.start_date, &range.end_date) else {
                    return Err(invalid());
                };
                let start = PartialDate::parse(start)?
                    .bound(false)
                    .ok_or_else(invalid)?;
                let end = PartialDate::parse(end)?.bound(true).ok_or_else(invalid)?;
                if start > end {
                    return Err(invalid());
                }
                matcher.ranges.push((start, end));
            }
        }
        if let Some(content) = &filters.content_filter {
            let included = content
                .included_content_categories
                .as_deref()
                .unwrap_or_default();
            let excluded = content
                .excluded_content_categories
                .as_deref()
                .unwrap_or_default();
            if included.len() > 10 || excluded.len() > 10 {
                return Err(Reply::invalid_argument(INVALID_ARGUMENT));
            }
            if let Some(bad) = included
                .iter()
                .chain(excluded)
                .find(|c| !CONTENT_CATEGORIES.contains(&c.as_str()))
            {
                return Err(invalid_enum("content_category", bad));
            }
            matcher.requires_category = included.iter().any(|c| c != "NONE");
        }
        if let Some(media) = &filters.media_type_filter {
            let types = media.media_types.as_deref().unwrap_or_default();
            let [only] = types else {
                return Err(Reply::invalid_argument(
                    "A media type filter must contain exactly one media type.",
                ));
            };
            matcher.media_type = match only.as_str() {
                "ALL_MEDIA" => None,
                "PHOTO" => Some(MediaKind::Photo),
                "VIDEO" => Some(MediaKind::Video),
                other => return Err(invalid_enum("media_types", other)),
            };
        }
        if let Some(feature) = &filters.feature_filter {
            for f in feature.included_features.as_deref().unwrap_or_default() {
                match f.as_str() {
                    "NONE" => {}
                    "FAVORITES" => matcher.favorites_only = true,
                    other => return Err(invalid_enum("included_features", other)),
                }
            }
        }
        // No fixture item is archived and all are app-created, so `includeArchivedMedia`
        // and `excludeNonAppCreatedData` change nothing.
        let _ = (
            filters.include_archived_media,
            filters.exclude_non_app_created_data,
        );
        Ok(matcher)
    }

    fn matches(&self, item: &FixtureItem) -> bool {
        // In UTC unless a test chose another calendar: Google does not say which it uses.
        let date = item.creation_time.with_timezone(&self.zone).date_naive();
        let date_ok = (self.dates.is_empty() && self.ranges.is_empty())
            || self.dates.iter().any(|d| d.matches(date))
            || self
                .ranges
                .iter()
                .any(|(start, end)| (*start..=*end).contains(&date));
        date_ok
            && self.media_type.as_ref().is_none_or(|k| *k == item.kind)
            && (!self.favorites_only || item.favorite)
            && !self.requires_category
    }
}

fn invalid_enum(field: &str, value: &str) -> Reply {
    Reply::invalid_argument(&format!("Invalid value at 'filters.{field}', \"{value}\""))
}

/// `POST /v1/mediaItems:search`
pub(crate) fn media_search(inner: &Inner, req: &Req) -> Reply {
    media_search_inner(inner, req).unwrap_or_else(|e| e)
}

fn media_search_inner(inner: &Inner, req: &Req) -> Result<Reply, Reply> {
    authorize(inner, req, "SearchMediaItems")?;
    Query::parse(req, &[])?;
    let malformed = |e: serde_json::Error| {
        Reply::invalid_argument(&format!("Invalid JSON payload received. {e}"))
    };
    // An empty body is an empty request message, as with Google's front end.
    let raw: Value = if req.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(&req.body).map_err(malformed)?
    };
    let search: SearchRequest = serde_json::from_value(raw.clone()).map_err(malformed)?;

    let size = page_size(search.page_size.clone(), ITEMS_DEFAULT_PAGE, ITEMS_MAX_PAGE)?;
    let album_id = search.album_id.as_deref().filter(|a| !a.is_empty());
    let order_by = search
        .order_by
        .as_deref()
        .map(str::trim)
        .filter(|o| !o.is_empty());
    if album_id.is_some() && search.filters.is_some() {
        return Err(Reply::invalid_argument(
            "The albumId cannot be set if any filters are used.",
        ));
    }
    let has_date_filter = search
        .filters
        .as_ref()
        .is_some_and(|f| f.date_filter.is_some());
    let ascending = match order_by {
        None => false,
        Some(_) if !has_date_filter => {
            return Err(Reply::invalid_argument(
                "The orderBy field is only supported together with a dateFilter.",
            ));
        }
        Some(order) => match order.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["MediaMetadata.creation_time"] => true,
            ["MediaMetadata.creation_time", "desc"] => false,
            _ => {
                return Err(Reply::invalid_argument(&format!(
                    "Invalid orderBy value: {order}"
                )));
            }
        },
    };

    // A page token is only valid for the same search, whatever page size is asked for.
    let listing = format!(
        "search:{}",
        json!({"albumId": raw.get("albumId"), "filters": raw.get("filters"), "orderBy": order_by})
    );
    let offset = decode_page_token(inner, &listing, search.page_token.as_deref())?;
    let library = inner.current();
    let library = &*library;
    match album_id {
        // No orderBy here: it needs a dateFilter, and an album takes no filters.
        Some(id) => {
            let album = library
                .album(id)
                .ok_or_else(|| Reply::invalid_argument(INVALID_ARGUMENT))?;
            let ids = &album.item_ids;
            Ok(items_page(
                inner,
                req,
                ids.len(),
                |i| library.item(&ids[i]),
                &listing,
                offset,
                size,
            ))
        }
        None => {
            let mut matcher = Matcher::new(search.filters.as_ref().unwrap_or(&Filters::default()))?;
            matcher.zone = inner.date_filter_zone();
            let scan = Scan::new(library, &matcher, ascending);
            Ok(scan.page(inner, req, &listing, offset, size))
        }
    }
}

/// A filtered search as a walk over the library in creation-time order (newest first, or
/// oldest first for an ascending `orderBy`): a page token is a position in that walk, so a page
/// looks at the items it returns (and those the filters skip on the way), never at the whole
/// library. A date filter of ranges only walks the slices of the order those ranges cover,
/// found by binary search.
struct Scan<'a> {
    library: &'a Library,
    matcher: &'a Matcher,
    /// Slices of `Index::by_time`, newest first, not overlapping.
    spans: Vec<Range<usize>>,
    total: usize,
    ascending: bool,
}

impl<'a> Scan<'a> {
    fn new(library: &'a Library, matcher: &'a Matcher, ascending: bool) -> Scan<'a> {
        let by_time = &library.index().by_time;
        let mut spans: Vec<Range<usize>> = if matcher.ranges.is_empty() || !matcher.dates.is_empty()
        {
            // No ranges, or also single dates (any year, any month): every item may match.
            std::iter::once(0..by_time.len()).collect()
        } else {
            matcher
                .ranges
                .iter()
                .map(|(start, end)| {
                    // [start 00:00, end+1 00:00) in the matcher's calendar.
                    let midnight =
                        |d: NaiveDate| (d.and_time(NaiveTime::MIN) - matcher.zone).and_utc();
                    let from = midnight(*start);
                    let until = end.succ_opt().map(midnight);
                    let first = until.map_or(0, |u| {
                        by_time.partition_point(|&i| library.items[i as usize].creation_time >= u)
                    });
                    let last = first
                        + by_time[first..]
                            .partition_point(|&i| library.items[i as usize].creation_time >= from);
                    first..last
                })
                .collect()
        };
        spans.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<usize>> = Vec::with_capacity(spans.len());
        for span in spans.into_iter().filter(|r| !r.is_empty()) {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        let total = merged.iter().map(|r| r.len()).sum();
        Scan {
            library,
            matcher,
            spans: merged,
            total,
            ascending,
        }
    }

    /// The item at position `p` of the walk, if it matches the filters (counted as examined).
    fn check(&self, inner: &Inner, p: usize) -> Option<&'a FixtureItem> {
        let mut q = if self.ascending {
            self.total - 1 - p
        } else {
            p
        };
        let span = self.spans.iter().find(|r| {
            if q < r.len() {
                true
            } else {
                q -= r.len();
                false
            }
        })?;
        let by_time = &self.library.index().by_time;
        let item = &self.library.items[by_time[span.start + q] as usize];
        inner.examined(1);
        self.matcher.matches(item).then_some(item)
    }

    /// The page at walk position `offset`: up to `size` matches, and the position of the next
    /// match as the next page's token. While pages repeat their previous page's last entry
    /// (`Emulator::set_repeat_last_entry`), a page after the first begins with the last match
    /// before `offset`, which takes one of its places (see `api::library_page_range`).
    fn page(&self, inner: &Inner, req: &Req, listing: &str, offset: usize, size: usize) -> Reply {
        let mut page: Vec<&FixtureItem> = Vec::with_capacity(size);
        if inner.repeat_last_entry()
            && offset > 0
            && size > 1
            && let Some(previous) = (0..offset.min(self.total))
                .rev()
                .find_map(|p| self.check(inner, p))
        {
            page.push(previous);
        }
        let mut p = offset;
        while page.len() < size && p < self.total {
            page.extend(self.check(inner, p));
            p += 1;
        }
        let next = (p..self.total).find(|&p| self.check(inner, p).is_some());
        let entries = page
            .into_iter()
            .map(|item| media_item_json(inner, &req.base, item))
            .collect();
        let next = next.map(|n| encode_page_token(inner, listing, n));
        Reply::json(StatusCode::OK, &listing_json("mediaItems", entries, next))
    }
}
