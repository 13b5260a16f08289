//! Each process's part of the same shuffled mini-batches, for
//! data-parallel training (PyTorch's `DistributedSampler`).

use super::batches::shuffled;

/// The global mini-batches of [`MiniBatches`](super::MiniBatches) (the
/// same seeded shuffle, the same batches), each split among `world`
/// processes: process `rank` takes its own contiguous part of every
/// global batch, and no example is in two parts.
///
/// Uneven splits are explicit, never padded with repeated examples:
/// - a global batch of `m` examples gives each process `⌊m/world⌋` or
///   `⌈m/world⌉` of them (the first `m mod world` processes one more), so
///   scale each process's loss by the global batch size and sum the
///   gradients over processes (what
///   `nn::distributed::Reduction::Sum` does) to get the gradient of
///   the whole batch;
/// - the epoch's last, smaller batch is kept when every process gets at
///   least one example of it, and dropped otherwise (it has fewer than
///   `world` examples), so every process takes the same number of steps.
///
/// ```
/// use tapegrad::data::ShardedBatches;
/// // 10 examples, global batches of 4, three processes.
/// let parts: Vec<Vec<Vec<usize>>> =
///     (0..3).map(|r| ShardedBatches::new(10, 4, 7, 3, r).epoch(0).collect()).collect();
/// assert_eq!(parts[0].len(), 2); // batches of 4 and 4; the last 2 < 3 are dropped
/// assert_eq!(parts.iter().map(|p| p[0].len()).collect::<Vec<_>>(), [2, 1, 1]);
/// let mut seen: Vec<usize> = parts.iter().flatten().flatten().copied().collect();
/// seen.sort();
/// seen.dedup();
/// assert_eq!(seen.len(), 8); // disjoint
/// ```
#[derive(Clone, Debug)]
pub struct ShardedBatches {
    n: usize,
    batch_size: usize,
    seed: u64,
    world: usize,
    rank: usize,
}

impl ShardedBatches {
    /// `n` examples in global batches of `batch_size`, shuffled from
    /// `seed`; this is process `rank` of `world`.
    ///
    /// # Panics
    /// If `batch_size < world` (some process would get nothing), or
    /// `rank >= world`.
    #[track_caller]
    pub fn new(n: usize, batch_size: usize, seed: u64, world: usize, rank: usize) -> Self {
        assert!(
            rank < world,
            "ShardedBatches: rank {rank} is not below the world size {world}"
        );
        assert!(
            batch_size >= world,
            "ShardedBatches: a global batch of {batch_size} cannot give each of {world} processes an example; use a batch of at least {world}"
        );
        ShardedBatches {
            n,
            batch_size,
            seed,
            world,
            rank,
        }
    }

    /// Steps per epoch: the same on every process.
    pub fn len(&self) -> usize {
        let full = self.n / self.batch_size;
        full + usize::from(self.n % self.batch_size >= self.world)
    }

    /// True if an epoch has no step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples (indices into `0..n`) this process takes at each step
    /// of epoch `epoch`.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = Vec<usize>> + '_ {
        let order = shuffled(self.n, self.seed, epoch);
        (0..self.len()).map(move |b| {
            let batch = &order[b * self.batch_size..((b + 1) * self.batch_size).min(self.n)];
            let (q, extra) = (batch.len() / self.world, batch.len() % self.world);
            let start = |r: usize| r * q + r.min(extra);
            batch[start(self.rank)..start(self.rank + 1)].to_vec()
        })
    }

    /// The size of the global batch at step `step` of an epoch (what each
    /// process's loss is divided by, for a sum over processes).
    pub fn global_batch(&self, step: usize) -> usize {
        (self.n - step * self.batch_size).min(self.batch_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::MiniBatches;

    #[test]
    fn parts_are_disjoint_cover_each_kept_batch_and_match_mini_batches() {
        for (n, b, world) in [(10, 4, 3), (12, 4, 2), (7, 7, 3), (100, 9, 4), (5, 2, 2)] {
            let x: Vec<usize> = (0..n).collect();
            let single: Vec<Vec<usize>> = MiniBatches::new(&x, &x, b, 3)
                .epoch(1)
                .map(|(i, _)| i)
                .collect();
            let parts: Vec<Vec<Vec<usize>>> = (0..world)
                .map(|r| ShardedBatches::new(n, b, 3, world, r).epoch(1).collect())
                .collect();
            let steps = parts[0].len();
            assert!(parts.iter().all(|p| p.len() == steps), "{n} {b} {world}");
            for s in 0..steps {
                let joined: Vec<usize> = parts.iter().flat_map(|p| p[s].clone()).collect();
                assert_eq!(joined, single[s], "{n} {b} {world} step {s}");
                assert_eq!(
                    joined.len(),
                    ShardedBatches::new(n, b, 3, world, 0).global_batch(s)
                );
                let sizes: Vec<usize> = parts.iter().map(|p| p[s].len()).collect();
                assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
                assert!(sizes.iter().all(|&k| k > 0));
            }
            // Only a last batch smaller than the world is dropped.
            assert!(single.len() - steps <= 1);
            if single.len() > steps {
                assert!(single.last().unwrap().len() < world);
            }
        }
    }

    #[test]
    #[should_panic(expected = "at least 4")]
    fn a_batch_smaller_than_the_world_is_refused() {
        ShardedBatches::new(10, 3, 1, 4, 0);
    }
}
