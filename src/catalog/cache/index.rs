//! The cache's index in memory: which blocks of which entry are on disk, how long each is, its
//! checksum and ages, and the bytes they add up to. Loaded from the store's `content_blocks`
//! at start and kept in step with it; every question a read asks (is this block here? where
//! does the missing run end?) is answered from here without touching the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::Key;

/// What the index knows of one block on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct BlockMeta {
    pub len: u64,
    pub crc32: u32,
    /// Unix milliseconds (catalog clock) when it was stored: it is served for at most
    /// `content_max_age` after.
    pub stored_at: u64,
    /// Unix milliseconds of the last read: the least recently used block goes first.
    pub used_at: u64,
    /// The `used_at` the store has: reads are written back at most once a minute per block.
    pub persisted_used_at: u64,
}

/// One entry: the blocks stored of one item's bytes in one variant and size.
struct Entry {
    key: Key,
    blocks: BTreeMap<u64, BlockMeta>,
}

/// The index (see the module doc); the entry names are the hashes of their [`Key`]s.
#[derive(Default)]
pub(super) struct Index {
    entries: HashMap<String, Entry>,
    /// Bytes of every indexed block: what the cache holds on disk.
    bytes: u64,
    /// Blocks being written right now (not indexed yet): a release of an older block at the
    /// same place must wait for their outcome rather than punch out the new bytes.
    writing: HashSet<(String, u64)>,
}

impl Index {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn get(&self, entry: &str, block: u64) -> Option<BlockMeta> {
        self.entries.get(entry)?.blocks.get(&block).copied()
    }

    /// Notes that block `block` of `entry` is being written ([`Index::end_write`] after).
    pub fn begin_write(&mut self, entry: &str, block: u64) {
        self.writing.insert((entry.to_string(), block));
    }

    pub fn end_write(&mut self, entry: &str, block: u64) {
        self.writing.remove(&(entry.to_string(), block));
    }

    /// Whether the bytes of block `block` of `entry` are to keep: indexed, or being written.
    pub fn wants_block(&self, entry: &str, block: u64) -> bool {
        self.get(entry, block).is_some() || self.writing.contains(&(entry.to_string(), block))
    }

    /// Whether `entry`'s file is in use: a block indexed or being written in it.
    pub fn wants_file(&self, entry: &str) -> bool {
        self.entries
            .get(entry)
            .is_some_and(|e| !e.blocks.is_empty())
            || self.writing.iter().any(|(e, _)| e == entry)
    }

    pub fn get_mut(&mut self, entry: &str, block: u64) -> Option<&mut BlockMeta> {
        self.entries.get_mut(entry)?.blocks.get_mut(&block)
    }

    /// The first indexed block of `entry` at or after `from`.
    pub fn next_cached(&self, entry: &str, from: u64) -> Option<u64> {
        let e = self.entries.get(entry)?;
        e.blocks.range(from..).next().map(|(b, _)| *b)
    }

    pub fn insert(&mut self, entry: &str, key: &Key, block: u64, meta: BlockMeta) {
        let e = self
            .entries
            .entry(entry.to_string())
            .or_insert_with(|| Entry {
                key: key.clone(),
                blocks: BTreeMap::new(),
            });
        if let Some(old) = e.blocks.insert(block, meta) {
            self.bytes -= old.len;
        }
        self.bytes += meta.len;
    }

    pub fn remove(&mut self, entry: &str, block: u64) -> Option<BlockMeta> {
        let e = self.entries.get_mut(entry)?;
        let meta = e.blocks.remove(&block)?;
        self.bytes -= meta.len;
        if e.blocks.is_empty() {
            self.entries.remove(entry);
        }
        Some(meta)
    }

    /// The key and name of the entry of `item_id` in `variant` (whatever its size), the one
    /// stored last when there are several (the variant changed size: an edited item): what a
    /// size variant, whose size no listing states, is looked up by.
    pub fn find(&self, item_id: &str, variant: &str) -> Option<(Key, String)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.key.item_id == item_id && e.key.variant == variant)
            .max_by_key(|(_, e)| e.blocks.values().map(|m| m.stored_at).max())
            .map(|(name, e)| (e.key.clone(), name.clone()))
    }

    /// Removes every block of item `item_id` whose entry is not for `keep_size`; returns them.
    pub fn remove_item(&mut self, item_id: &str, keep_size: Option<u64>) -> Vec<(String, u64)> {
        let names: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.key.item_id == item_id && Some(e.key.size) != keep_size)
            .map(|(name, _)| name.clone())
            .collect();
        let mut gone = Vec::new();
        for name in names {
            if let Some(e) = self.entries.remove(&name) {
                for (block, meta) in e.blocks {
                    self.bytes -= meta.len;
                    gone.push((name.clone(), block));
                }
            }
        }
        gone
    }

    /// Removes least recently used blocks until at most `target` bytes remain; returns them.
    pub fn evict_to(&mut self, target: u64) -> Vec<(String, u64)> {
        if self.bytes <= target {
            return Vec::new();
        }
        let mut all: Vec<(u64, String, u64)> = self
            .entries
            .iter()
            .flat_map(|(name, e)| {
                e.blocks
                    .iter()
                    .map(move |(b, m)| (m.used_at, name.clone(), *b))
            })
            .collect();
        all.sort_unstable();
        let mut gone = Vec::new();
        for (_, name, block) in all {
            if self.bytes <= target {
                break;
            }
            self.remove(&name, block);
            gone.push((name, block));
        }
        gone
    }

    /// Every indexed block per entry, for the sweep of what nobody indexes.
    pub fn blocks_by_entry(&self) -> HashMap<String, BTreeSet<u64>> {
        self.entries
            .iter()
            .map(|(name, e)| (name.clone(), e.blocks.keys().copied().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(len: u64, used_at: u64) -> BlockMeta {
        BlockMeta {
            len,
            crc32: 0,
            stored_at: 0,
            used_at,
            persisted_used_at: used_at,
        }
    }

    #[test]
    fn least_recently_used_goes_first_and_bytes_add_up() {
        let key = Key::new("a", "d", 30);
        let mut index = Index::default();
        index.insert("e", &key, 0, meta(10, 3));
        index.insert("e", &key, 1, meta(10, 1));
        index.insert("e", &key, 2, meta(10, 2));
        assert_eq!(index.bytes(), 30);
        assert_eq!(index.next_cached("e", 1), Some(1));
        let gone = index.evict_to(15);
        assert_eq!(gone, vec![("e".into(), 1), ("e".into(), 2)]);
        assert_eq!(index.bytes(), 10);
        assert_eq!(index.next_cached("e", 1), None);
        assert_eq!(index.remove_item("a", Some(30)), vec![]);
        assert_eq!(index.remove_item("a", None), vec![("e".into(), 0)]);
        assert_eq!(index.bytes(), 0);
    }
}
