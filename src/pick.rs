//! `gphotos-dav pick`: the Picker API flow from the terminal.
//!
//! 1. `sessions.create` (with `maxItemCount` when `--max` is given);
//! 2. print the session's `pickerUri` + `/autoclose` (the tab closes itself when the user is
//!    done) and, when standard output is a terminal, a QR code of it for a phone;
//! 3. poll `sessions.get` every `pollInterval` (what Google asks) until `mediaItemsSet`, or
//!    until the session's polling `timeoutIn` runs out; a spinner on standard error shows the
//!    wait (hidden when standard error is not a terminal);
//! 4. list the picked items (`mediaItems.list`, all pages) and store the set (name, session
//!    id, `expireTime`, items with the time their URLs were fetched) in the metadata store,
//!    where a running server finds it and shows it as `/picked/<name>/`;
//! 5. print what was picked, under the names the tree shows.
//!
//! `--list` prints the stored sets and their expiry; `--delete NAME` ends the session at
//! Google (`sessions.delete`) and removes the set. `--import-to-album TITLE` copies a set into
//! an app-created album through the upload path ([`import`]), so its items outlive the
//! session; a complete import then ends the session and removes the set.
//!
//! A set's session lives as long as the set is served (its download URLs are renewed by
//! listing the session again), and Google limits how many sessions a user holds: when
//! `sessions.create` answers RESOURCE_EXHAUSTED, `pick` says which sets to end and how.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::catalog::naming;
use crate::catalog::picked::{PICKED_ROOT, StoredItem, check_set_name, decode_items, encode_items};
use crate::catalog::store::{PickedSet, Store};
use crate::catalog::urls::UrlAge;
use crate::google::library::{BATCH_CREATE_MAX, NewItem};
use crate::google::picker::{MAX_ITEM_COUNT, PickedMediaItem, PickingSession};
use crate::google::{Google, GoogleError, UploadClient};

/// How long to poll when Google does not say (its own `timeoutIn` starts at 30 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);

/// What to do when Google refuses a new picking session: every stored set that has not
/// expired holds one (its items are served by listing the session again), so the way out
/// is ending sets.
const SESSION_LIMIT_FIX: &str = "Each picked set holds its session until it expires, is \
    deleted or is imported. See the sets with `gphotos-dav pick --list` and end the ones you \
    no longer need with `gphotos-dav pick --delete NAME` (or keep one's items with \
    `--import-to-album TITLE`, which ends its session), then pick again";

/// What can go wrong in the pick command.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    #[error("{0}")]
    Usage(String),
    /// A set name `catalog::picked::check_set_name` refuses (the page's API answers 400).
    #[error("{0}")]
    BadName(String),
    /// A live set already has the name (the page's API answers 409).
    #[error("{0}")]
    NameTaken(String),
    #[error(transparent)]
    Google(#[from] GoogleError),
    #[error(transparent)]
    Store(#[from] crate::catalog::store::StoreError),
    #[error("could not write the output: {0}")]
    Output(#[from] std::io::Error),
}

/// Where the command writes: what it reports (stdout), and whether that is a terminal (then
/// the picker URL also comes as a QR code). The gallery's API (`server::web::api`) runs the
/// same steps in the server: it sets `quiet` (no spinner or progress bar on the server's
/// standard error) and reads an import's progress from `done`.
pub struct Output<'a> {
    pub out: &'a mut (dyn Write + Send),
    pub terminal: bool,
    pub quiet: bool,
    /// Items of an import dealt with so far (imported, skipped or failed).
    pub done: Option<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
}

impl Output<'_> {
    fn draw_target(&self) -> indicatif::ProgressDrawTarget {
        if self.quiet {
            indicatif::ProgressDrawTarget::hidden()
        } else {
            indicatif::ProgressDrawTarget::stderr()
        }
    }

    fn count_done(&self) {
        if let Some(done) = &self.done {
            done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// The names the tree shows for `items` (see `catalog::naming`).
pub fn tree_names(items: &[PickedMediaItem]) -> Vec<String> {
    let named: Vec<naming::Named> = items
        .iter()
        .map(|i| naming::Named {
            id: &i.id,
            name: &i.media_file.filename,
            mime: Some(&i.media_file.mime_type),
        })
        .collect();
    naming::folder_names(&named)
}

/// Creates a session, waits for the user to pick, stores the set under `name`.
pub async fn pick(
    google: &Google,
    store: &Store,
    name: &str,
    max: Option<u32>,
    output: &mut Output<'_>,
) -> Result<PickedSet, PickError> {
    let session = begin(google, store, name, max, output).await?;
    finish(google, store, name, &session, output).await
}

/// Steps 1 and 2: checks the name, creates the session and shows where to pick.
pub async fn begin(
    google: &Google,
    store: &Store,
    name: &str,
    max: Option<u32>,
    output: &mut Output<'_>,
) -> Result<PickingSession, PickError> {
    check_set_name(name).map_err(PickError::BadName)?;
    if let Some(n) = max
        && !(1..=MAX_ITEM_COUNT).contains(&n)
    {
        return Err(PickError::Usage(format!(
            "--max must be between 1 and {MAX_ITEM_COUNT}"
        )));
    }
    let now = Utc::now();
    if let Some(existing) = store
        .picked_sets()
        .await
        .into_iter()
        .find(|s| s.name == name)
        && existing.expire_time > now
    {
        return Err(PickError::NameTaken(format!(
            "a picked set named {name:?} exists until {}: choose another name, or end it \
             first with `gphotos-dav pick --delete {name:?}`",
            existing.expire_time.to_rfc3339()
        )));
    }

    let session = match google.picker.create_session(max).await {
        Err(e @ GoogleError::PickingSessionLimit(_)) => {
            return Err(PickError::Usage(format!("{e}. {SESSION_LIMIT_FIX}")));
        }
        other => other?,
    };
    let uri = session.autoclose_uri();
    writeln!(
        output.out,
        "Open this link, pick photos and videos in Google Photos, then press Done:\n\n{uri}\n"
    )?;
    if output.terminal
        && let Ok(code) = qrcode::QrCode::new(uri.as_bytes())
    {
        let qr = code
            .render::<qrcode::render::unicode::Dense1x2>()
            .dark_color(qrcode::render::unicode::Dense1x2::Light)
            .light_color(qrcode::render::unicode::Dense1x2::Dark)
            .build();
        writeln!(output.out, "Or scan this with your phone:\n\n{qr}\n")?;
    }
    output.out.flush()?;
    Ok(session)
}

/// Steps 3 to 5: waits until the user picked in `session`, stores the set, reports it.
pub async fn finish(
    google: &Google,
    store: &Store,
    name: &str,
    session: &PickingSession,
    output: &mut Output<'_>,
) -> Result<PickedSet, PickError> {
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_draw_target(output.draw_target());
    spinner.set_message("waiting for you to pick in Google Photos…");
    let started = tokio::time::Instant::now();
    let mut deadline = started + session.timeout_in().unwrap_or(DEFAULT_TIMEOUT);
    let mut current = session.clone();
    while !current.media_items_set {
        if tokio::time::Instant::now() >= deadline {
            spinner.finish_and_clear();
            // The session is useless now; ending it is a courtesy, its failure no problem.
            if let Err(e) = google.picker.delete_session(&session.id).await {
                tracing::debug!("could not delete the timed-out picking session: {e}");
            }
            return Err(PickError::Usage(
                "nothing was picked before the picking session timed out; run pick again".into(),
            ));
        }
        tokio::time::sleep(current.poll_interval()).await;
        spinner.tick();
        current = google.picker.get_session(&session.id).await?;
        if let Some(left) = current.timeout_in() {
            deadline = deadline.min(tokio::time::Instant::now() + left);
        }
        spinner.set_message(format!(
            "waiting for you to pick in Google Photos… {} s",
            started.elapsed().as_secs()
        ));
    }
    spinner.finish_and_clear();

    let fetched = Utc::now();
    let items = google.picker.list_items(&session.id).await?;
    let expire_time = current
        .expire_time
        .or(session.expire_time)
        .ok_or_else(|| GoogleError::Protocol("the picking session has no expireTime".into()))?;
    let set = PickedSet {
        name: name.to_string(),
        session_id: session.id.clone(),
        expire_time,
        items_json: encode_items(&items, fetched),
        picked_at: fetched,
    };
    store.put_picked_set(set.clone()).await?;

    writeln!(
        output.out,
        "Picked {} item(s): /{PICKED_ROOT}/{name}/ until {} ({}).",
        items.len(),
        expire_time.to_rfc3339(),
        remaining(expire_time, Utc::now())
    )?;
    for (item, shown) in items.iter().zip(tree_names(&items)) {
        let created = item
            .create_time
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        writeln!(output.out, "  {shown}\t{}\t{created}", item.kind)?;
    }
    Ok(set)
}

/// "in 42 min", "in 3 h 5 min", or "expired".
fn remaining(expire: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let left = (expire - now).num_minutes();
    if expire <= now {
        "expired".into()
    } else if left >= 60 {
        format!("expires in {} h {} min", left / 60, left % 60)
    } else {
        format!("expires in {left} min")
    }
}

/// `pick --list`: every stored set, its size and its expiry.
pub async fn list(store: &Store, out: &mut (dyn Write + Send)) -> Result<(), PickError> {
    let sets = store.picked_sets().await;
    if sets.is_empty() {
        writeln!(
            out,
            "No picked sets. Pick some with: gphotos-dav pick --name NAME"
        )?;
        return Ok(());
    }
    let now = Utc::now();
    for set in sets {
        let count = decode_items(&set.items_json).map_or(0, |i| i.len());
        writeln!(
            out,
            "{}\t{count} item(s)\t{}\t{}",
            set.name,
            set.expire_time.to_rfc3339(),
            remaining(set.expire_time, now)
        )?;
    }
    Ok(())
}

/// `pick --delete NAME`: ends the session at Google and forgets the set.
pub async fn delete(
    google: &Google,
    store: &Store,
    name: &str,
    out: &mut (dyn Write + Send),
) -> Result<(), PickError> {
    let Some(set) = store
        .picked_sets()
        .await
        .into_iter()
        .find(|s| s.name == name)
    else {
        return Err(PickError::Usage(format!(
            "no picked set named {name:?} (see `gphotos-dav pick --list`)"
        )));
    };
    end_set(google, store, &set).await?;
    writeln!(out, "Deleted the picked set {name:?}.")?;
    Ok(())
}

/// Ends `set`'s picking session at Google (`sessions.delete`, so it stops counting against
/// the user's session limit) and removes the set from the store. A session that expired or is
/// already gone needs no ending; any other failure keeps the set, so it can be tried again.
async fn end_set(google: &Google, store: &Store, set: &PickedSet) -> Result<(), PickError> {
    if set.expire_time > Utc::now() {
        match google.picker.delete_session(&set.session_id).await {
            // Already gone at Google: nothing left to end.
            Ok(()) | Err(GoogleError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    store.delete_picked_set(&set.name).await?;
    Ok(())
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// A picked item downloaded to a private temporary file, removed when dropped.
struct Spooled {
    path: PathBuf,
}

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `pick --import-to-album TITLE`: copies every item of `set` into the app-created album
/// titled `album_title` (found among the albums this app created, else created), through
/// the upload path: download with the access token, upload the bytes, batchCreate into the
/// album, record the copy in the store. Items recorded as imported are skipped, so a rerun
/// after an interruption only does what is left. The copies have no location metadata:
/// Google serves picked photos without it. Download URLs older than `url_age` allows are
/// replaced before use, as the server does.
///
/// Once every item is in the album (imported now or before), the set has served its purpose:
/// its picking session is deleted at Google (sessions count against a per-user limit) and the
/// set is removed, which the output says. If any item failed, both are kept, so a rerun can
/// retry the failed items from the same session.
pub async fn import(
    google: &Google,
    store: &Store,
    set: &PickedSet,
    album_title: &str,
    url_age: &UrlAge,
    output: &mut Output<'_>,
) -> Result<ImportSummary, PickError> {
    if set.expire_time <= Utc::now() {
        return Err(PickError::Usage(format!(
            "the picked set {:?} expired at {}: Google no longer serves its items; pick them \
             again to import them",
            set.name,
            set.expire_time.to_rfc3339()
        )));
    }
    if album_title.trim().is_empty() || album_title.chars().count() > 500 {
        return Err(PickError::Usage(
            "an album title has 1 to 500 characters".into(),
        ));
    }
    let mut items = decode_items(&set.items_json).map_err(|e| {
        PickError::Usage(format!("the stored set {:?} is unreadable: {e}", set.name))
    })?;
    let names = tree_names(&items.iter().map(|s| s.item.clone()).collect::<Vec<_>>());
    let album = match google
        .library
        .list_albums()
        .await?
        .into_iter()
        .find(|a| a.title == album_title)
    {
        Some(album) => album,
        None => google.library.create_album(album_title).await?,
    };
    writeln!(
        output.out,
        "Importing {} item(s) of {:?} into the album {album_title:?} (shown as /album/…):",
        items.len(),
        set.name
    )?;
    let progress = indicatif::ProgressBar::new(items.len() as u64);
    progress.set_draw_target(output.draw_target());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}") {
        progress.set_style(style);
    }
    let mut summary = ImportSummary::default();
    let mut batch: Vec<(usize, NewItem)> = Vec::new();
    for i in 0..items.len() {
        let (id, name) = (items[i].item.id.clone(), names[i].clone());
        if store.imported_copy(&id).await.is_some() {
            progress.suspend(|| writeln!(output.out, "  {name}\tskipped (imported before)"))?;
            summary.skipped += 1;
            progress.inc(1);
            output.count_done();
            continue;
        }
        progress.set_message(name.clone());
        let upload = upload_one(
            google,
            &google.upload,
            store,
            set,
            &mut items,
            i,
            &name,
            url_age,
        );
        match upload.await {
            Ok(new_item) => batch.push((i, new_item)),
            Err(e) => {
                progress.suspend(|| writeln!(output.out, "  {name}\tfailed: {e}"))?;
                summary.failed += 1;
                progress.inc(1);
                output.count_done();
            }
        }
        if batch.len() == BATCH_CREATE_MAX {
            create(
                google,
                store,
                &album.id,
                &items,
                &names,
                &mut batch,
                &mut summary,
                output,
                &progress,
            )
            .await?;
        }
    }
    create(
        google,
        store,
        &album.id,
        &items,
        &names,
        &mut batch,
        &mut summary,
        output,
        &progress,
    )
    .await?;
    progress.finish_and_clear();
    writeln!(
        output.out,
        "Imported {}, skipped {} (imported before), failed {}. The copies have no location \
         metadata: Google serves picked photos without it.",
        summary.imported, summary.skipped, summary.failed
    )?;
    if summary.failed > 0 {
        writeln!(
            output.out,
            "Kept the picked set {:?} and its picking session: run the same command again to \
             retry the failed item(s).",
            set.name
        )?;
        return Ok(summary);
    }
    match end_set(google, store, set).await {
        Ok(()) => writeln!(
            output.out,
            "Deleted the picked set {:?} and ended its picking session: its items are in the \
             album {album_title:?} now.",
            set.name
        )?,
        // The import itself succeeded; only the clean-up is left to the user.
        Err(e) => writeln!(
            output.out,
            "Could not end the picking session of {:?} ({e}); end it with `gphotos-dav pick \
             --delete {:?}`.",
            set.name, set.name
        )?,
    }
    Ok(summary)
}

/// Item `i` of `set` (shown as `name`) on its way into the library: downloaded with the access
/// token to a private temporary file (see [`spool`]), then uploaded with `upload`. Answers
/// what batchCreate needs to make the copy; the caller creates it (in its own batch) and
/// records it with `Store::record_import`. The one way a picked item is copied: `import`
/// does it for each item of a set, the server for a WebDAV COPY of a picked file
/// ([`upload_picked`]).
#[allow(clippy::too_many_arguments)]
async fn upload_one(
    google: &Google,
    upload: &UploadClient,
    store: &Store,
    set: &PickedSet,
    items: &mut [StoredItem],
    i: usize,
    name: &str,
    url_age: &UrlAge,
) -> Result<NewItem, PickError> {
    let (path, size) = spool(google, store, set, items, i, url_age).await?;
    let token = upload
        .upload_file(&path.path, size, &items[i].item.media_file.mime_type)
        .await?;
    drop(path);
    Ok(NewItem {
        upload_token: token,
        file_name: upload_name(&items[i].item, name),
    })
}

/// The picked item `item_id` of the set `set_name`, shown as `name`, downloaded and uploaded
/// as `import` does it (see [`upload_one`]), for the write path's COPY of a picked file into
/// an album. The caller creates the item and records the import.
pub async fn upload_picked(
    google: &Google,
    upload: &UploadClient,
    store: &Store,
    set_name: &str,
    item_id: &str,
    name: &str,
    url_age: &UrlAge,
) -> Result<NewItem, PickError> {
    let set = store
        .picked_sets()
        .await
        .into_iter()
        .find(|s| s.name == set_name)
        .ok_or_else(|| PickError::Usage(format!("the picked set {set_name:?} is gone")))?;
    if set.expire_time <= Utc::now() {
        return Err(PickError::Usage(format!(
            "the picked set {set_name:?} expired: Google no longer serves its items"
        )));
    }
    let mut items = decode_items(&set.items_json)
        .map_err(|e| PickError::Usage(format!("the stored set {set_name:?} is unreadable: {e}")))?;
    let i = items
        .iter()
        .position(|s| s.item.id == item_id)
        .ok_or_else(|| PickError::Usage(format!("the picked set {set_name:?} has no such item")))?;
    upload_one(google, upload, store, &set, &mut items, i, name, url_age).await
}

/// The file name the copy gets: the picked item's own, else the name the tree shows.
fn upload_name(item: &PickedMediaItem, shown: &str) -> String {
    if item.media_file.filename.is_empty() {
        shown.to_string()
    } else {
        item.media_file.filename.clone()
    }
}

/// batchCreate of the uploaded items waiting in `batch`; each created item is recorded.
#[allow(clippy::too_many_arguments)]
async fn create(
    google: &Google,
    store: &Store,
    album_id: &str,
    items: &[StoredItem],
    names: &[String],
    batch: &mut Vec<(usize, NewItem)>,
    summary: &mut ImportSummary,
    output: &mut Output<'_>,
    progress: &indicatif::ProgressBar,
) -> Result<(), PickError> {
    if batch.is_empty() {
        return Ok(());
    }
    let new_items: Vec<NewItem> = batch.iter().map(|(_, n)| n.clone()).collect();
    let results = google
        .library
        .batch_create(Some(album_id), &new_items)
        .await?;
    for ((i, _), result) in batch.drain(..).zip(results) {
        match result {
            Ok(created) => {
                store.record_import(&items[i].item.id, &created.id).await?;
                progress.suspend(|| writeln!(output.out, "  {}\timported", names[i]))?;
                summary.imported += 1;
            }
            Err(status) => {
                progress.suspend(|| {
                    writeln!(
                        output.out,
                        "  {}\tfailed: Google refused the item: {} (code {})",
                        names[i], status.message, status.code
                    )
                })?;
                summary.failed += 1;
            }
        }
        progress.inc(1);
        output.count_done();
    }
    Ok(())
}

/// Downloads item `i` of the set (with the access token) to a private temporary file. A URL
/// that is old or refused is replaced by listing the session again (stored back); a refusal
/// of a URL younger than `url_age` allows shortens it.
async fn spool(
    google: &Google,
    store: &Store,
    set: &PickedSet,
    items: &mut [StoredItem],
    i: usize,
    url_age: &UrlAge,
) -> Result<(Spooled, u64), PickError> {
    let age = |item: &StoredItem| {
        (Utc::now() - item.url_fetched_at)
            .to_std()
            .unwrap_or_default()
    };
    if age(&items[i]) >= url_age.max() {
        refresh_urls(google, store, set, items).await?;
    }
    match download_to_file(google, &items[i].item).await {
        Err(PickError::Google(GoogleError::UrlExpired)) => {
            url_age.refused_at(age(&items[i]));
            refresh_urls(google, store, set, items).await?;
            download_to_file(google, &items[i].item).await
        }
        other => other,
    }
}

/// Lists the session's items again for fresh URLs, and stores them.
async fn refresh_urls(
    google: &Google,
    store: &Store,
    set: &PickedSet,
    items: &mut [StoredItem],
) -> Result<(), PickError> {
    let fetched = Utc::now();
    let fresh = google.picker.list_items(&set.session_id).await?;
    for stored in items.iter_mut() {
        if let Some(f) = fresh.iter().find(|f| f.id == stored.item.id) {
            stored.item = f.clone();
            stored.url_fetched_at = fetched;
        }
    }
    store
        .put_picked_set(PickedSet {
            items_json: encode_items(&fresh, fetched),
            ..set.clone()
        })
        .await?;
    Ok(())
}

async fn download_to_file(
    google: &Google,
    item: &PickedMediaItem,
) -> Result<(Spooled, u64), PickError> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let url = item.download_url();
    let mut download = google.content.download_bearer(&url, 0).await?;
    let spooled = Spooled {
        path: std::env::temp_dir().join(format!(
            "gphotos-dav-import-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        )),
    };
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    // The bytes are the user's private photos: readable by the user only.
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(&spooled.path).await?;
    let mut written = 0u64;
    while let Some(chunk) = download.body.next().await {
        let chunk = chunk?;
        written += chunk.len() as u64;
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    if download.start != 0 || download.total.is_some_and(|t| t != written) {
        return Err(PickError::Google(GoogleError::Protocol(format!(
            "the content host sent {written} bytes of {:?}",
            download.total
        ))));
    }
    Ok((spooled, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time() {
        let now = Utc::now();
        assert_eq!(remaining(now, now), "expired");
        assert_eq!(
            remaining(now + chrono::Duration::seconds(42 * 60 + 30), now),
            "expires in 42 min"
        );
        assert_eq!(
            remaining(now + chrono::Duration::minutes(185), now),
            "expires in 3 h 5 min"
        );
    }
}
