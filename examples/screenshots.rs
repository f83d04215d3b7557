//! Takes the screenshots of docs/web.md from a running demo: run `docs/screenshots.sh`, which
//! starts `gphotos-dav demo` on a free port and calls this with its address and `docs/img`.
//!
//! Usage: `screenshots <demo URL> <directory>`. Headless Chromium (`/usr/bin/chromium`,
//! Debian's `chromium`) through `/usr/bin/chromedriver` (`chromium-driver`), in a 1000x700
//! window, walks to the three views and writes `gallery.png` (the grid of `/media/all`),
//! `viewer.png` (a photo open in the viewer) and `picking.png` (a picking session on
//! `/picked/`, with its link and QR code). Every wait has a deadline, so a view that never
//! appears is an error naming it, not a hang. Tests write their own screenshots under
//! `target/`; this is the only writer of the committed ones.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio::process::Command;

type Error = Box<dyn std::error::Error + Send + Sync>;

const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(dir)) = (args.next(), args.next()) else {
        return Err(
            "usage: screenshots <demo URL, e.g. http://127.0.0.1:8080/> <directory>".into(),
        );
    };
    let base = base.trim_end_matches('/').to_string();
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("/usr/bin/chromedriver (Debian's chromium-driver): {e}"))?;
    let mut lines = tokio::io::BufReader::new(driver.stdout.take().expect("piped")).lines();
    tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await? {
            if line.contains("started successfully") {
                return Ok(());
            }
        }
        Err::<(), Error>("chromedriver exited before it started".into())
    })
    .await
    .map_err(|_| "chromedriver did not start in time")??;
    // Keep reading, so that chromedriver never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1000,700", "--hide-scrollbars"],
        }),
    );
    let c = tokio::time::timeout(
        DEADLINE,
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}")),
    )
    .await
    .map_err(|_| "the browser did not start in time")??;
    // --window-size is the window's outer size: make the page itself 1000x700.
    let chrome = c
        .execute("return window.outerHeight - window.innerHeight", vec![])
        .await?
        .as_u64()
        .unwrap_or(0);
    c.set_window_size(1000, 700 + u32::try_from(chrome)?)
        .await?;
    let taken = walk(&c, &base, &dir).await;
    c.close().await?;
    taken
}

/// The three views, one screenshot each.
async fn walk(c: &Client, base: &str, dir: &Path) -> Result<(), Error> {
    // The gallery: every thumbnail of the first screen loaded.
    c.goto(&format!("{base}/media/all/")).await?;
    until(
        c,
        "the grid's first thumbnails",
        "const imgs = Array.from(document.querySelectorAll('#grid img')).slice(0, 24);
         return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);",
    )
    .await?;
    shoot(c, dir, "gallery").await?;

    // The viewer: a plain click on a photo, its screen-size variant loaded.
    c.find(Locator::Css("a.tile[data-kind=photo]"))
        .await?
        .click()
        .await?;
    until(
        c,
        "the viewer's photo",
        "const i = document.querySelector('#viewer:not([hidden]) #viewer-img');
         return i && i.complete && i.naturalWidth > 0;",
    )
    .await?;
    shoot(c, dir, "viewer").await?;

    // Picking: a set named on /picked/, the session's link and QR code shown.
    c.goto(&format!("{base}/picked/")).await?;
    let form = c.find(Locator::Id("pick-form")).await?;
    form.find(Locator::Css("input[name=name]"))
        .await?
        .send_keys("Summer")
        .await?;
    form.find(Locator::Css("button")).await?.click().await?;
    until(
        c,
        "the picking link and QR code",
        "const a = document.getElementById('picker-link');
         const i = document.querySelector('#pick-session img');
         return a && i && i.complete && i.naturalWidth > 0;",
    )
    .await?;
    shoot(c, dir, "picking").await?;
    // End the session again, so a demo left running is as it was.
    let status = c
        .execute(
            "return fetch('/_/api/picks/Summer', { method: 'DELETE' }).then(r => r.status)",
            vec![],
        )
        .await?;
    if status != json!(204) {
        return Err(format!("deleting the set Summer answered {status}").into());
    }
    Ok(())
}

/// Evaluates `script` (a function body) until it returns something truthy.
async fn until(c: &Client, what: &str, script: &str) -> Result<Value, Error> {
    tokio::time::timeout(DEADLINE, async {
        loop {
            let v = c.execute(script, vec![]).await?;
            if !v.is_null() && v != json!(false) && v != json!(0) && v != json!("") {
                return Ok(v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .map_err(|_| format!("not in time: {what}"))?
}

async fn shoot(c: &Client, dir: &Path, name: &str) -> Result<(), Error> {
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, palette_png(&c.screenshot().await?)?)?;
    println!("{}", path.display());
    Ok(())
}

/// Chromium's screenshot as a 256-colour PNG: the sample photos are gradients with per-pixel
/// noise, which a true-colour PNG stores at about 0.6 MB a screen; a palette (NeuQuant) keeps
/// the look at about a third of that.
fn palette_png(screenshot: &[u8]) -> Result<Vec<u8>, Error> {
    let mut decoder = png::Decoder::new(screenshot);
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut buf)?;
    let pixels = &buf[..frame.buffer_size()];
    let rgba: Vec<u8> = match frame.color_type {
        png::ColorType::Rgba => pixels.to_vec(),
        png::ColorType::Rgb => pixels
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        other => return Err(format!("a screenshot in {other:?}").into()),
    };
    let quant = color_quant::NeuQuant::new(10, 256, &rgba);
    let indices: Vec<u8> = rgba
        .chunks_exact(4)
        .map(|p| quant.index_of(p) as u8)
        .collect();
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Indexed);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_palette(quant.color_map_rgb());
    encoder.set_compression(png::Compression::Best);
    encoder.write_header()?.write_image_data(&indices)?;
    Ok(out)
}
