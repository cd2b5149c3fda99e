//! TinyLFU admission: which of two files the cache would rather keep.
//!
//! A recency list alone lets every file read once push out files read a thousand times:
//! on a site bigger than the budget, most misses are one-hit wonders. TinyLFU (Einziger,
//! Friedman and Manes, "TinyLFU: A Highly Efficient Cache Admission Policy", 2017) keeps
//! an approximate count of recent accesses per key, so the cache (`store.rs`) admits a
//! new file only when it has been read more often, per byte, than the files it would
//! evict.
//!
//! - **Count-min sketch:** `DEPTH` rows of saturating 4-bit-range counters (held in
//!   `u8`s, capped at 15), indexed by double hashing of one 64-bit key hash; an estimate
//!   is the smallest of the key's counters. Updates are conservative: only the counters
//!   equal to the minimum grow, which keeps collisions from inflating estimates.
//! - **Doorkeeper:** a one-hash bit set in front of the sketch. A key's first access in
//!   a period only sets its bit; later ones count in the sketch. One-hit wonders then
//!   never touch the counters, and the estimate adds the bit back.
//! - **Aging:** after `10 × width` recorded accesses every counter is halved and the
//!   doorkeeper cleared, so the counts follow what is popular now.
//!
//! Sized from the byte budget: one counter column per 8 KiB of budget (a typical
//! compressed web file), clamped to [256, 2^20] columns and rounded up to a power of two.
//! A 100 MB budget gets 16,384 columns: 64 KiB of counters and 2 KiB of doorkeeper, which
//! the cache counts against its budget.

/// Rows of the count-min sketch.
const DEPTH: usize = 4;
/// Budget bytes per counter column.
const BYTES_PER_COLUMN: u64 = 8 * 1024;
const MIN_WIDTH: usize = 256;
const MAX_WIDTH: usize = 1 << 20;
/// Counters saturate here (TinyLFU's 4-bit counters).
const MAX_COUNT: u8 = 15;
/// Accesses per aging period, as a multiple of the width.
const SAMPLE_FACTOR: u32 = 10;

/// The frequency sketch with its doorkeeper (see the module docs).
#[derive(Debug)]
pub struct Admission {
    /// `DEPTH` rows of `width` counters, row after row.
    counters: Vec<u8>,
    width_mask: usize,
    /// One bit per column.
    doorkeeper: Vec<u64>,
    recorded: u32,
    sample: u32,
}

impl Admission {
    /// A sketch sized for a cache of `budget` bytes.
    pub fn for_budget(budget: u64) -> Self {
        let columns = usize::try_from(budget / BYTES_PER_COLUMN).unwrap_or(MAX_WIDTH);
        let width = columns.clamp(MIN_WIDTH, MAX_WIDTH).next_power_of_two();
        Admission {
            counters: vec![0; DEPTH * width],
            width_mask: width - 1,
            doorkeeper: vec![0; width / 64],
            recorded: 0,
            sample: SAMPLE_FACTOR * width as u32,
        }
    }

    /// The sketch's hash of a cache key.
    pub fn hash(key: &str) -> u64 {
        xxhash_rust::xxh3::xxh3_64(key.as_bytes())
    }

    /// Bytes the sketch holds.
    pub fn bytes(&self) -> u64 {
        (self.counters.len() + 8 * self.doorkeeper.len()) as u64
    }

    /// Counts one access to the key with this hash.
    pub fn record(&mut self, hash: u64) {
        let (word, bit) = self.door(hash);
        if self.doorkeeper[word] & bit == 0 {
            self.doorkeeper[word] |= bit;
        } else {
            let slots = self.slots(hash);
            let least = slots.iter().map(|&i| self.counters[i]).min().unwrap_or(0);
            if least < MAX_COUNT {
                for i in slots {
                    if self.counters[i] == least {
                        self.counters[i] += 1;
                    }
                }
            }
        }
        self.recorded += 1;
        if self.recorded >= self.sample {
            self.age();
        }
    }

    /// How often the key with this hash was accessed lately (at most `MAX_COUNT + 1`).
    pub fn estimate(&self, hash: u64) -> u8 {
        let (word, bit) = self.door(hash);
        let seen = u8::from(self.doorkeeper[word] & bit != 0);
        let least = self
            .slots(hash)
            .iter()
            .map(|&i| self.counters[i])
            .min()
            .unwrap_or(0);
        least + seen
    }

    /// Halves every counter and clears the doorkeeper.
    fn age(&mut self) {
        for counter in &mut self.counters {
            *counter /= 2;
        }
        self.doorkeeper.fill(0);
        self.recorded /= 2;
    }

    /// The key's counter in each row (Kirsch–Mitzenmacher double hashing).
    fn slots(&self, hash: u64) -> [usize; DEPTH] {
        let (low, high) = (hash as usize, (hash >> 32) as usize | 1);
        let width = self.width_mask + 1;
        std::array::from_fn(|row| {
            row * width + (low.wrapping_add(row.wrapping_mul(high)) & self.width_mask)
        })
    }

    fn door(&self, hash: u64) -> (usize, u64) {
        // Bits of the hash the sketch's rows use least.
        let column = (hash.rotate_right(17) as usize) & self.width_mask;
        (column / 64, 1 << (column % 64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_counts_after_the_doorkeeper_and_saturates() {
        let mut sketch = Admission::for_budget(0);
        let key = Admission::hash("a.html");
        assert_eq!(sketch.estimate(key), 0);
        sketch.record(key);
        assert_eq!(sketch.estimate(key), 1, "the doorkeeper's bit");
        for _ in 0..4 {
            sketch.record(key);
        }
        assert_eq!(sketch.estimate(key), 5);
        for _ in 0..100 {
            sketch.record(key);
        }
        assert_eq!(sketch.estimate(key), MAX_COUNT + 1);
        assert_eq!(sketch.estimate(Admission::hash("b.html")), 0);
    }

    #[test]
    fn admission_ages_every_count_by_half_at_the_end_of_a_period() {
        let mut sketch = Admission::for_budget(0);
        let (hot, once) = (Admission::hash("hot"), Admission::hash("once"));
        for _ in 0..9 {
            sketch.record(hot);
        }
        sketch.record(once);
        assert_eq!((sketch.estimate(hot), sketch.estimate(once)), (9, 1));
        // The period's last access ages the sketch: counts halved, doorkeeper cleared.
        sketch.recorded = sketch.sample - 1;
        sketch.record(hot);
        assert_eq!(
            sketch.estimate(hot),
            4,
            "9 counted, halved; doorkeeper cleared"
        );
        assert_eq!(sketch.estimate(once), 0);
        assert!(sketch.recorded < sketch.sample);
    }

    #[test]
    fn admission_sketch_is_sized_from_the_budget() {
        assert_eq!(Admission::for_budget(0).bytes(), 4 * 256 + 32);
        let hundred_mb = Admission::for_budget(100 << 20);
        assert_eq!(hundred_mb.width_mask + 1, 16_384);
        assert_eq!(hundred_mb.bytes(), 4 * 16_384 + 2_048);
        assert_eq!(Admission::for_budget(u64::MAX).width_mask + 1, MAX_WIDTH);
    }

    #[test]
    fn admission_estimates_stay_close_with_as_many_keys_as_columns() {
        // 256 one-access keys on 256 columns (the sizing rule's ratio): collisions, yet
        // few one-access keys look hot and the hot key stays hot.
        let mut sketch = Admission::for_budget(0);
        let cold: Vec<u64> = (0..256)
            .map(|n| Admission::hash(&format!("cold-{n}")))
            .collect();
        for &key in &cold {
            sketch.record(key);
        }
        let hot = Admission::hash("hot");
        for _ in 0..12 {
            sketch.record(hot);
        }
        assert!(sketch.estimate(hot) >= 12);
        let inflated = cold.iter().filter(|&&key| sketch.estimate(key) > 2).count();
        assert!(
            inflated < 26,
            "{inflated} one-access keys estimated above 2"
        );
    }
}
