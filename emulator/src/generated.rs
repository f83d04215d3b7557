//! Bytes of any size, computed from their offset: the body of the "big item" benchmarks
//! download (hundreds of MiB), which the emulator must serve without holding it in memory.
//!
//! The byte at offset `i` depends only on `(seed, i)`, so the content host can produce any
//! range on demand, chunk by chunk as the connection drains, and a benchmark can check what it
//! received against [`fill`] without a copy of the file.
//!
//! Generation must be much faster than the links it feeds (the unthrottled benchmark moves
//! bytes at several GB/s), so it is a memcpy-speed pattern rather than a real random stream:
//! a fixed 1 MiB block of noise, each 8-byte word XORed with a mix of the seed and the block's
//! index. Every MiB of every item therefore differs, which is all a transfer check needs.

use std::sync::OnceLock;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::reply::Body;

/// Bytes generated per body chunk: memory per open download stays at about this much.
const CHUNK: u64 = 256 * 1024;

/// Words in the repeating noise block (1 MiB).
const BLOCK_WORDS: usize = 128 * 1024;

/// The shared noise block, built once per process.
fn block() -> &'static [u64] {
    static BLOCK: OnceLock<Vec<u64>> = OnceLock::new();
    BLOCK.get_or_init(|| {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..BLOCK_WORDS)
            .map(|_| {
                // xorshift64*
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545_F491_4F6C_DD1D)
            })
            .collect()
    })
}

/// splitmix64's finaliser: spreads (seed, block index) over all 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The little-endian word at word index `j` of the item generated from `seed`.
fn word(noise: &[u64], seed: u64, j: u64) -> u64 {
    let blk = j / BLOCK_WORDS as u64;
    noise[(j % BLOCK_WORDS as u64) as usize] ^ mix(seed ^ blk.wrapping_mul(0xA24B_AED4_963E_E407))
}

/// Writes the bytes at `offset .. offset + buf.len()` of the item generated from `seed`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let noise = block();
    let mut pos = 0usize;
    // A leading partial word.
    let skew = (offset % 8) as usize;
    if skew != 0 && !buf.is_empty() {
        let bytes = word(noise, seed, offset / 8).to_le_bytes();
        let n = (8 - skew).min(buf.len());
        buf[..n].copy_from_slice(&bytes[skew..skew + n]);
        pos = n;
    }
    // Whole words (the hot loop), then a trailing partial word.
    let mut j = (offset + pos as u64) / 8;
    let mut chunks = buf[pos..].chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(noise, seed, j).to_le_bytes());
        j += 1;
    }
    let rest = chunks.into_remainder();
    if !rest.is_empty() {
        let n = rest.len();
        rest.copy_from_slice(&word(noise, seed, j).to_le_bytes()[..n]);
    }
}

/// A range of a generated item, as a reply carries it until it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GeneratedRange {
    pub seed: u64,
    pub start: u64,
    pub len: u64,
}

impl GeneratedRange {
    /// The range as a body, generated one chunk at a time as the connection asks for more.
    pub fn into_body(self) -> Body {
        let end = self.start + self.len;
        let chunks = futures::stream::unfold(self.start, move |pos| async move {
            if pos >= end {
                return None;
            }
            let n = CHUNK.min(end - pos) as usize;
            let mut buf = BytesMut::zeroed(n);
            fill(self.seed, pos, &mut buf);
            let chunk: Bytes = buf.freeze();
            Some((Ok::<_, std::io::Error>(Frame::data(chunk)), pos + n as u64))
        });
        StreamBody::new(chunks).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn any_range_matches_the_whole() {
        let mut whole = vec![0u8; 3 * 1024 * 1024 + 13];
        fill(7, 0, &mut whole);
        for (offset, len) in [
            (0u64, 1usize),
            (5, 3),
            (7, 20),
            (1_048_570, 20),
            (2_000_001, 77),
        ] {
            let mut part = vec![0u8; len];
            fill(7, offset, &mut part);
            assert_eq!(part, whole[offset as usize..offset as usize + len]);
        }
        // Another seed, other bytes; successive MiB differ.
        let mut other = vec![0u8; 64];
        fill(8, 0, &mut other);
        assert_ne!(other, whole[..64]);
        assert_ne!(whole[..64], whole[1024 * 1024..1024 * 1024 + 64]);
    }
}
