//! The emulator at the scale of big libraries (issue #18): a page of a library of a million
//! items costs what a page of a thousand costs. Measured as work (the items the handlers
//! looked at, `Emulator::items_examined`), not as time, so the test holds on a busy machine.
//!
//! A binary of its own: the million-item library takes a few hundred MiB while it lives.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use gphotos_dav_emulator::{
    CLIENT_ID, CLIENT_SECRET, Emulator, EmulatorOptions, LIBRARY_START, LIBRARY_YEARS,
    REFRESH_TOKEN, RunningEmulator,
};
use serde_json::{Value, json};

async fn start(library_size: usize) -> (RunningEmulator, String) {
    let emu = Emulator::start(
        EmulatorOptions {
            library_size,
            ..EmulatorOptions::default()
        },
        "127.0.0.1:0".parse().expect("address"),
    )
    .await
    .expect("emulator starts");
    let body: Value = reqwest::Client::new()
        .post(emu.token_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", REFRESH_TOKEN),
        ])
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token json");
    let token = body["access_token"].as_str().expect("a token").to_owned();
    (emu, token)
}

/// One request; its answer and how many items the emulator looked at to give it.
async fn call(
    emu: &RunningEmulator,
    token: &str,
    search: Option<&Value>,
    query: &str,
) -> (Value, u64) {
    let before = emu.emulator.items_examined();
    let client = reqwest::Client::new();
    let request = match search {
        Some(body) => client
            .post(format!("{}/v1/mediaItems:search", emu.api_base()))
            .json(body),
        None => client.get(format!("{}/v1/mediaItems?{query}", emu.api_base())),
    };
    let resp = request.bearer_auth(token).send().await.expect("request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    (body, emu.emulator.items_examined() - before)
}

fn ids(page: &Value) -> Vec<String> {
    page["mediaItems"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["id"].as_str().expect("id").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn day(date: NaiveDate) -> Value {
    use chrono::Datelike;
    json!({"year": date.year(), "month": date.month(), "day": date.day()})
}

/// The work of the pages a client asks for first: mediaItems.list pages 1 and 2, a date range
/// of a few days in the middle of the library (pages 1 and 2, newest and oldest first), and
/// the whole span oldest first (page 1).
async fn page_costs(library_size: usize) -> Vec<(&'static str, u64, usize)> {
    let (emu, token) = start(library_size).await;
    let mut costs = Vec::new();
    let (first, cost) = call(&emu, &token, None, "pageSize=100").await;
    costs.push(("list page 1", cost, ids(&first).len()));
    let next = first["nextPageToken"].as_str().expect("more pages");
    let (second, cost) = call(
        &emu,
        &token,
        None,
        &format!("pageSize=100&pageToken={next}"),
    )
    .await;
    costs.push(("list page 2", cost, ids(&second).len()));

    // A range holding a little more than two pages in either library: the library spreads
    // its items evenly, so the days it takes depend on the size.
    let start: DateTime<Utc> = LIBRARY_START.parse().expect("start");
    let span_days = 365 * LIBRARY_YEARS;
    let days = ((250 * span_days) / library_size as i64).max(1);
    let from = (start + Duration::days(span_days / 2)).date_naive();
    let to = from + Duration::days(days - 1);
    for order in [None, Some("MediaMetadata.creation_time")] {
        let mut body = json!({
            "pageSize": 100,
            "filters": {"dateFilter": {"ranges": [{"startDate": day(from), "endDate": day(to)}]}},
        });
        if let Some(order) = order {
            body["orderBy"] = json!(order);
        }
        let (first, cost) = call(&emu, &token, Some(&body), "").await;
        costs.push(("range page 1", cost, ids(&first).len()));
        body["pageToken"] = first["nextPageToken"].clone();
        let (second, cost) = call(&emu, &token, Some(&body), "").await;
        costs.push(("range page 2", cost, ids(&second).len()));
    }
    let all = json!({
        "pageSize": 100,
        "filters": {"dateFilter": {"ranges": [{
            "startDate": {"year": 1, "month": 1, "day": 1},
            "endDate": {"year": 9999, "month": 12, "day": 31},
        }]}},
        "orderBy": "MediaMetadata.creation_time",
    });
    let (first, cost) = call(&emu, &token, Some(&all), "").await;
    costs.push(("everything, oldest first", cost, ids(&first).len()));
    costs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_a_million_items_costs_what_a_page_of_a_thousand_costs() {
    let small = page_costs(1_000).await;
    let big = page_costs(1_000_000).await;
    for ((what, small_cost, small_n), (_, big_cost, big_n)) in small.iter().zip(&big) {
        assert_eq!(small_n, &100, "{what}: a full page in the small library");
        assert_eq!(big_n, &100, "{what}: a full page in the big library");
        // The page's items and the one match after them (whether a next page exists).
        assert!(
            *big_cost <= 101 && *small_cost <= 101,
            "{what}: {small_cost} items looked at for 1,000 items, {big_cost} for 1,000,000"
        );
    }
}

/// Paging a date range by walk positions gives what filtering the whole library gives:
/// every item whose creation date (UTC) is in the range, once, in creation-time order, in
/// both directions, and also while pages repeat their predecessor's last entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_pages_hold_exactly_the_items_of_the_range() {
    let (emu, token) = start(1_000).await;
    let lib = emu.emulator.library();
    let from = NaiveDate::from_ymd_opt(2019, 3, 1).expect("date");
    let to = NaiveDate::from_ymd_opt(2021, 1, 1).expect("date");
    // Google's calendar for date filters is not documented: UTC, and the two extremes.
    for east in [0, 14 * 3600, -12 * 3600] {
        emu.emulator.set_date_filter_offset(east);
        let zone = chrono::FixedOffset::east_opt(east).expect("offset");
        let mut want: Vec<(DateTime<Utc>, String)> = lib
            .items
            .iter()
            .filter(|i| (from..=to).contains(&i.creation_time.with_timezone(&zone).date_naive()))
            .map(|i| (i.creation_time, i.id.clone()))
            .collect();
        want.sort_by_key(|w| std::cmp::Reverse(w.0));
        let newest_first: Vec<String> = want.iter().map(|(_, id)| id.clone()).collect();
        let oldest_first: Vec<String> = newest_first.iter().rev().cloned().collect();
        assert!(newest_first.len() > 300, "the range spans several pages");

        for repeat in [false, true] {
            emu.emulator.set_repeat_last_entry(repeat);
            for (order, want) in [
                (None, &newest_first),
                (Some("MediaMetadata.creation_time"), &oldest_first),
            ] {
                let mut body = json!({
                    "pageSize": 100,
                    "filters": {"dateFilter": {"ranges": [{"startDate": day(from), "endDate": day(to)}]}},
                });
                if let Some(order) = order {
                    body["orderBy"] = json!(order);
                }
                let mut got: Vec<String> = Vec::new();
                for _ in 0..100 {
                    let (page, _) = call(&emu, &token, Some(&body), "").await;
                    for id in ids(&page) {
                        // A repeated entry is the previous page's last one.
                        if got.last() != Some(&id) {
                            got.push(id);
                        }
                    }
                    match page["nextPageToken"].as_str() {
                        Some(next) => body["pageToken"] = json!(next),
                        None => break,
                    }
                }
                assert_eq!(
                    &got, want,
                    "offset {east}, repeat {repeat}, order {order:?}"
                );
            }
        }
    }
}
