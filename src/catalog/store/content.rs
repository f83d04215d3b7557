//! The `content_blocks` table: the index of the content cache (`catalog/cache`).
//!
//! The cache keeps an item's bytes in one sparse file per entry; this table says which blocks exist,
//! how long each is, its CRC-32 (a block whose file does not match is never served) and when it
//! was stored and last read (for the age limit and least-recently-used eviction). It lives in
//! the metadata store rather than beside the files so that the index and the rest of what we
//! know about an item survive a restart together, in one file SQLite keeps consistent.
//!
//! A block's row is written only after its bytes were written, so a crash leaves at worst bytes
//! without a row (punched out at the next start), never a row for a half-written block (and a
//! block whose bytes the disk lost anyway fails its CRC-32).

use rusqlite::params;

use super::Store;

/// One cached block as the index keeps it (a row of `content_blocks`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlock {
    /// The entry's file name: a hash of item id, variant and size.
    pub entry: String,
    pub item_id: String,
    /// `d` (an item's original bytes) or `dv` (a video's): what was downloaded.
    pub variant: String,
    /// The item's size when the block was stored: the entry belongs to that size only.
    pub size: u64,
    pub block: u64,
    /// Bytes in the block (the last block of an item is shorter).
    pub len: u64,
    pub crc32: u32,
    /// Unix milliseconds (catalog clock).
    pub stored_at: u64,
    /// Unix milliseconds of the last read (catalog clock).
    pub used_at: u64,
}

impl Store {
    /// Every indexed block (read once at start).
    pub async fn content_blocks(&self) -> Vec<StoredBlock> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT entry, item_id, variant, size, block, len, crc32, stored_at, used_at
                 FROM content_blocks",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(StoredBlock {
                    entry: r.get(0)?,
                    item_id: r.get(1)?,
                    variant: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                    block: r.get::<_, i64>(4)? as u64,
                    len: r.get::<_, i64>(5)? as u64,
                    crc32: r.get::<_, i64>(6)? as u32,
                    stored_at: r.get::<_, i64>(7)? as u64,
                    used_at: r.get::<_, i64>(8)? as u64,
                })
            })?;
            rows.collect()
        })
        .await
        .unwrap_or_else(|e| {
            tracing::warn!("{e}; the content cache starts empty");
            Vec::new()
        })
    }

    /// Indexes blocks whose bytes are written, in one transaction, without waiting (a
    /// request's blocks come in batches: one commit per block was a cost of every fill).
    pub fn put_content_blocks(&self, blocks: Vec<StoredBlock>) {
        self.submit("index cached blocks", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO content_blocks
                     (entry, item_id, variant, size, block, len, crc32, stored_at, used_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?;
                for b in &blocks {
                    stmt.execute(params![
                        b.entry,
                        b.item_id,
                        b.variant,
                        b.size as i64,
                        b.block as i64,
                        b.len as i64,
                        b.crc32 as i64,
                        b.stored_at as i64,
                        b.used_at as i64
                    ])?;
                }
            }
            tx.commit()
        });
    }

    /// Notes that block `block` of `entry` was read at `used_at` (for eviction).
    pub fn touch_content_block(&self, entry: &str, block: u64, used_at: u64) {
        let entry = entry.to_string();
        self.submit("note a cache read", move |conn| {
            conn.execute(
                "UPDATE content_blocks SET used_at = ?3 WHERE entry = ?1 AND block = ?2",
                params![entry, block as i64, used_at as i64],
            )
            .map(drop)
        });
    }

    /// Drops blocks from the index (evicted, expired, or failing their checksum).
    pub fn forget_content_blocks(&self, blocks: Vec<(String, u64)>) {
        if blocks.is_empty() {
            return;
        }
        self.submit("forget cached blocks", move |conn| {
            let tx = conn.transaction()?;
            {
                let mut stmt = tx
                    .prepare_cached("DELETE FROM content_blocks WHERE entry = ?1 AND block = ?2")?;
                for (entry, block) in &blocks {
                    stmt.execute(params![entry, *block as i64])?;
                }
            }
            tx.commit()
        });
    }
}
