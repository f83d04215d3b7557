//! `[server] metrics_listen`: Prometheus counters that match what happened, and `/healthz`.
//! Its own binary: the metrics are process-wide.

use gphotos_dav::google::RetryPolicy;
use gphotos_dav::server::{Config, Server, Tuning};
use gphotos_dav_emulator::{self as emulator, Emulator, EmulatorOptions};

fn value(text: &str, series: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_calls_cache_bytes_and_requests() {
    let emu = Emulator::start(EmulatorOptions::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.server.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    config.google.client_id = Some(emulator::CLIENT_ID.into());
    config.google.client_secret = Some(emulator::CLIENT_SECRET.into());
    config.google.refresh_token = Some(emulator::REFRESH_TOKEN.into());
    config.google.api_base = emu.api_base();
    config.google.token_url = emu.token_url();
    let store_dir = tempfile::tempdir().unwrap();
    config.cache.path = Some(store_dir.path().join("metadata.sqlite"));
    config.cache.content_dir = Some(store_dir.path().join("content"));
    let server = Server::bind_tuned(
        &config,
        Tuning {
            retry: RetryPolicy::immediate(),
        },
    )
    .await
    .unwrap();
    let url = server.url();
    let metrics = format!("http://{}/", server.metrics_addr().unwrap());
    tokio::spawn(server.serve(std::future::pending()));
    let http = reqwest::Client::new();

    let health = http.get(format!("{metrics}healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");

    let propfind = || {
        http.request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{url}media/all/"),
        )
        .header("Depth", "1")
        .send()
    };
    propfind().await.unwrap().text().await.unwrap();
    propfind().await.unwrap().text().await.unwrap();
    let item = &emu.emulator.library().items[0];
    let len = item.bytes.len() as u64;
    let get = || async {
        let body = http
            .get(format!("{url}media/all/{}", item.filename))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(body, item.bytes);
    };
    let scrape = || async {
        http.get(format!("{metrics}metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Read once (from Google, kept in the content cache), wait until the cache holds it (a
    // client has its last byte before the block is written), read again (from the cache).
    get().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while value(&scrape().await, "gphotos_dav_content_cache_disk_bytes") != len {
        assert!(
            std::time::Instant::now() < deadline,
            "the cache keeps the item"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    get().await;

    let text = scrape().await;
    let n = emu.emulator.library().items.len() as u64;
    assert_eq!(
        value(
            &text,
            "gphotos_dav_upstream_calls_total{kind=\"mediaItems.list\",status=\"200\"}"
        ),
        1
    );
    assert_eq!(
        value(
            &text,
            "gphotos_dav_upstream_calls_total{kind=\"content.head\",status=\"200\"}"
        ),
        n
    );
    assert_eq!(
        value(
            &text,
            "gphotos_dav_upstream_calls_total{kind=\"token\",status=\"200\"}"
        ),
        1
    );
    assert_eq!(
        value(
            &text,
            "gphotos_dav_cache_lookups_total{cache=\"size\",result=\"miss\"}"
        ),
        n
    );
    assert!(
        value(
            &text,
            "gphotos_dav_cache_lookups_total{cache=\"listing\",result=\"hit\"}"
        ) >= 1
    );
    assert_eq!(value(&text, "gphotos_dav_proxied_bytes_total"), 2 * len);
    // The content cache: one miss (the first read's request), one hit, each read's bytes by
    // where they came from, what it holds, nothing evicted.
    for (series, want) in [
        (
            "gphotos_dav_cache_lookups_total{cache=\"content\",result=\"miss\"}",
            1,
        ),
        (
            "gphotos_dav_cache_lookups_total{cache=\"content\",result=\"hit\"}",
            1,
        ),
        ("gphotos_dav_content_bytes_total{source=\"google\"}", len),
        ("gphotos_dav_content_bytes_total{source=\"cache\"}", len),
        ("gphotos_dav_content_cache_disk_bytes", len),
        ("gphotos_dav_content_cache_evictions_total", 0),
    ] {
        assert_eq!(value(&text, series), want, "{series}");
    }
    // Quota: one Library API request; n size probes plus one download on download URLs (the
    // second read asked Google nothing).
    assert_eq!(
        value(&text, "gphotos_dav_quota_used_today{bucket=\"api\"}"),
        1
    );
    assert_eq!(
        value(&text, "gphotos_dav_quota_used_today{bucket=\"media\"}"),
        n + 1
    );
    assert_eq!(value(&text, "gphotos_dav_active_streams"), 0);
    // Two PROPFINDs and two GETs (the scrapes are on the metrics listener).
    assert_eq!(value(&text, "gphotos_dav_requests_total"), 4);
    assert!(!text.contains(emulator::REFRESH_TOKEN));
}
