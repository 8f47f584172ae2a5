//! Which examples each micro-batch holds: epochs back to back, each drawn from (seed, epoch), with
//! per-source mixing weights and optional length-grouped batches (`transformers`' `group_by_length`).
//!
//! Nothing here keeps state that a checkpoint must save: the order of any micro-batch is a function
//! of the seed and its index, which is what makes resumed runs exact.

use rand::seq::{index, SliceRandom};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A 64-bit mix of the seed and a counter (splitmix64), so neighbouring counters get unrelated seeds.
pub(crate) fn derive_seed(seed: u64, stream: u64, counter: u64) -> u64 {
    let mut z = seed
        ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ counter.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// Seed streams: 1 epoch order, 2 micro-batch randomness, 3 evaluation masks (`trainer`), 4 the
// fractional part of a source's weight.
const STREAM_ORDER: u64 = 1;
const STREAM_SUBSAMPLE: u64 = 4;

/// How a task's examples are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampling {
    /// Consecutive runs of examples from one source (a training file), with that source's weight:
    /// an epoch holds `round(weight × count)` of its examples — whole copies, then a seeded sample
    /// for the fraction. Weight 1 everywhere is a plain pass over the data.
    pub sources: Vec<Source>,
    /// Each example's length in tokens, for length-grouped batches; `None` when the task has none.
    pub lengths: Option<Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub name: String,
    pub examples: usize,
    pub weight: f64,
}

impl Sampling {
    /// One source of `examples` examples with weight 1.
    pub fn uniform(examples: usize) -> Self {
        Self {
            sources: vec![Source {
                name: "train".to_owned(),
                examples,
                weight: 1.0,
            }],
            lengths: None,
        }
    }

    fn drawn(source: &Source) -> usize {
        (source.weight * source.examples as f64).round() as usize
    }

    /// Examples in one epoch, after weighting.
    pub fn epoch_len(&self) -> usize {
        self.sources.iter().map(Self::drawn).sum()
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        for s in &self.sources {
            if !(s.weight >= 0.0 && s.weight.is_finite()) {
                anyhow::bail!(
                    "source {}: weight must be a finite number ≥ 0, got {}",
                    s.name,
                    s.weight
                );
            }
        }
        if self.epoch_len() == 0 {
            anyhow::bail!("no training examples (after mixing weights)");
        }
        Ok(())
    }
}

/// Groups of this many batches are sorted by length, as `transformers`' `LengthGroupedSampler`:
/// batches of similar lengths waste little padding, and the order stays random across groups.
const MEGABATCH_BATCHES: usize = 50;

/// The data order: the current epoch's order is kept, so a step costs its batch, not a reshuffle.
pub(crate) struct DataOrder {
    seed: u64,
    batch: usize,
    sampling: Sampling,
    group_by_length: bool,
    /// Each epoch's last micro-batch is left out when it is short (`dataloader_drop_last`).
    drop_last: bool,
    epoch: Option<u64>,
    order: Vec<usize>,
}

/// Micro-batches of `batch` in an epoch of `examples`: the last one short, or left out with `drop_last`.
pub(crate) fn batches_per_epoch(examples: usize, batch: usize, drop_last: bool) -> u64 {
    if drop_last {
        (examples / batch.max(1)) as u64
    } else {
        examples.div_ceil(batch.max(1)) as u64
    }
}

impl DataOrder {
    pub(crate) fn new(seed: u64, batch: usize, sampling: Sampling, group_by_length: bool) -> Self {
        Self {
            seed,
            batch,
            sampling,
            group_by_length,
            drop_last: false,
            epoch: None,
            order: Vec::new(),
        }
    }

    /// With `drop_last`, every micro-batch is full: each epoch's short last one is left out.
    pub(crate) fn dropping_last(self, drop_last: bool) -> Self {
        Self { drop_last, ..self }
    }

    fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut pool = Vec::with_capacity(self.sampling.epoch_len());
        let mut first = 0;
        for (k, source) in self.sampling.sources.iter().enumerate() {
            let range = first..first + source.examples;
            first += source.examples;
            if source.examples == 0 {
                continue;
            }
            let drawn = Sampling::drawn(source);
            for _ in 0..drawn / source.examples {
                pool.extend(range.clone());
            }
            let rest = drawn % source.examples;
            if rest > 0 {
                let counter = epoch.wrapping_mul(1 << 20).wrapping_add(k as u64);
                let mut rng =
                    ChaCha8Rng::seed_from_u64(derive_seed(self.seed, STREAM_SUBSAMPLE, counter));
                let mut chosen = index::sample(&mut rng, source.examples, rest).into_vec();
                chosen.sort_unstable();
                pool.extend(chosen.into_iter().map(|i| range.start + i));
            }
        }
        pool.shuffle(&mut ChaCha8Rng::seed_from_u64(derive_seed(
            self.seed,
            STREAM_ORDER,
            epoch,
        )));
        if let (true, Some(lengths)) = (self.group_by_length, &self.sampling.lengths) {
            for group in pool.chunks_mut(MEGABATCH_BATCHES * self.batch) {
                // Stable: ties keep the random order.
                group.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
            }
            // The longest batch first, so a run that runs out of memory does so at once.
            if let Some(longest) =
                (0..pool.len()).max_by_key(|&p| (lengths[pool[p]], usize::MAX - p))
            {
                let b = longest / self.batch;
                if b > 0 {
                    let (head, tail) = pool.split_at_mut(b * self.batch);
                    let n = self.batch.min(tail.len());
                    head[..n].swap_with_slice(&mut tail[..n]);
                }
            }
        }
        pool
    }

    /// The examples of micro-batch `index` in the global stream of micro-batches.
    pub(crate) fn micro_batch(&mut self, index: u64) -> Vec<usize> {
        let examples = self.sampling.epoch_len();
        let per_epoch = batches_per_epoch(examples, self.batch, self.drop_last).max(1);
        let (epoch, within) = (index / per_epoch, (index % per_epoch) as usize);
        if self.epoch != Some(epoch) {
            self.order = self.epoch_order(epoch);
            self.epoch = Some(epoch);
        }
        let start = within * self.batch;
        self.order[start..(start + self.batch).min(examples)].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(order: &mut DataOrder, e: u64, examples: usize, batch: usize) -> Vec<usize> {
        let per = examples.div_ceil(batch) as u64;
        (e * per..(e + 1) * per)
            .flat_map(|i| order.micro_batch(i))
            .collect()
    }

    #[test]
    fn drop_last_leaves_out_each_epochs_short_batch() {
        let mut order = DataOrder::new(7, 4, Sampling::uniform(10), false).dropping_last(true);
        assert_eq!(batches_per_epoch(10, 4, true), 2);
        let (a, b) = (order.micro_batch(0), order.micro_batch(1));
        assert_eq!((a.len(), b.len()), (4, 4));
        // Micro-batch 2 opens the next epoch: another permutation.
        let next: Vec<usize> = [order.micro_batch(2), order.micro_batch(3)].concat();
        let first: Vec<usize> = [a, b].concat();
        assert_ne!(first, next);
        let mut seen = first.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8, "no example twice within an epoch");
        let mut plain = DataOrder::new(7, 4, Sampling::uniform(10), false);
        assert_eq!(plain.micro_batch(2).len(), 2, "without it, the short batch");
        assert_eq!(
            &plain.micro_batch(0)[..],
            &first[..4],
            "the same permutation"
        );
    }

    #[test]
    fn micro_batches_cover_each_epoch_once_in_a_seeded_order() {
        let mut order = DataOrder::new(7, 4, Sampling::uniform(10), false);
        let first = epoch(&mut order, 0, 10, 4);
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        assert_eq!(
            order.micro_batch(2).len(),
            2,
            "the last batch keeps the tail"
        );
        let next = epoch(&mut order, 1, 10, 4);
        assert_ne!(first, next, "each epoch has its own order");
        let mut fresh = DataOrder::new(7, 4, Sampling::uniform(10), false);
        assert_eq!(first, epoch(&mut fresh, 0, 10, 4));
        // Asking for a batch out of turn gives the same examples as reaching it in order.
        assert_eq!(
            DataOrder::new(7, 4, Sampling::uniform(10), false).micro_batch(4),
            next[4..8].to_vec()
        );
    }

    #[test]
    fn mixing_weights_repeat_and_subsample_sources() {
        let sampling = Sampling {
            sources: vec![
                Source {
                    name: "a".into(),
                    examples: 10,
                    weight: 2.5,
                },
                Source {
                    name: "b".into(),
                    examples: 20,
                    weight: 0.25,
                },
                Source {
                    name: "c".into(),
                    examples: 5,
                    weight: 0.0,
                },
            ],
            lengths: None,
        };
        assert_eq!(sampling.epoch_len(), 25 + 5);
        let mut order = DataOrder::new(1, 8, sampling.clone(), false);
        let e0 = epoch(&mut order, 0, 30, 8);
        let count =
            |e: &[usize], r: std::ops::Range<usize>| e.iter().filter(|i| r.contains(i)).count();
        assert_eq!(count(&e0, 0..10), 25);
        assert_eq!(count(&e0, 10..30), 5);
        assert_eq!(count(&e0, 30..35), 0, "weight 0 drops a source");
        for i in 0..10 {
            let n = e0.iter().filter(|&&x| x == i).count();
            assert!(n == 2 || n == 3, "example {i} drawn {n} times");
        }
        let b0: Vec<usize> = e0
            .iter()
            .copied()
            .filter(|i| (10..30).contains(i))
            .collect();
        let e1 = epoch(&mut order, 1, 30, 8);
        let b1: Vec<usize> = e1
            .iter()
            .copied()
            .filter(|i| (10..30).contains(i))
            .collect();
        let (mut b0, mut b1) = (b0, b1);
        b0.sort();
        b1.sort();
        assert_ne!(b0, b1, "the subsample changes with the epoch");
        assert!(Sampling {
            sources: vec![Source {
                name: "x".into(),
                examples: 3,
                weight: f64::NAN
            }],
            lengths: None
        }
        .validate()
        .is_err());
    }

    #[test]
    fn length_grouping_sorts_within_megabatches_and_puts_the_longest_first() {
        let n = 1000;
        let lengths: Vec<usize> = (0..n).map(|i| (i * 7919) % 384 + 1).collect();
        let sampling = Sampling {
            sources: vec![Source {
                name: "t".into(),
                examples: n,
                weight: 1.0,
            }],
            lengths: Some(lengths.clone()),
        };
        let batch = 4;
        let mut grouped = DataOrder::new(3, batch, sampling.clone(), true);
        let order = epoch(&mut grouped, 0, n, batch);
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "still one pass");
        assert_eq!(lengths[order[0]], 384, "the longest example leads");
        let padding = |o: &[usize]| -> usize {
            o.chunks(batch)
                .map(|c| {
                    let m = c.iter().map(|&i| lengths[i]).max().unwrap();
                    c.iter().map(|&i| m - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let mut plain = DataOrder::new(3, batch, sampling, false);
        let random = epoch(&mut plain, 0, n, batch);
        assert!(
            padding(&order) * 10 < padding(&random),
            "grouped {} vs random {}",
            padding(&order),
            padding(&random)
        );
    }
}
