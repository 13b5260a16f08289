//! Shuffled mini-batches, reproducible from a seed.

use crate::tensor::{Element, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Something whose rows (first-axis entries) can be picked by index:
/// inputs as tensors, class labels or targets as slices and vectors.
pub trait Rows {
    /// What a selection of rows is.
    type Out;
    /// Number of rows.
    fn len(&self) -> usize;
    /// True if there are no rows.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The rows at `idx`, in that order.
    fn rows(&self, idx: &[usize]) -> Self::Out;
}

impl<T: Element> Rows for Tensor<T> {
    type Out = Tensor<T>;
    fn len(&self) -> usize {
        self.shape().first().copied().unwrap_or(1)
    }
    fn rows(&self, idx: &[usize]) -> Tensor<T> {
        Tensor::rows(self, idx)
    }
}

impl<V: Copy> Rows for [V] {
    type Out = Vec<V>;
    fn len(&self) -> usize {
        <[V]>::len(self)
    }
    fn rows(&self, idx: &[usize]) -> Vec<V> {
        idx.iter().map(|&i| self[i]).collect()
    }
}

impl<V: Copy> Rows for Vec<V> {
    type Out = Vec<V>;
    fn len(&self) -> usize {
        self.as_slice().len()
    }
    fn rows(&self, idx: &[usize]) -> Vec<V> {
        self.as_slice().rows(idx)
    }
}

/// Mini-batches of matching rows of inputs `x` and targets `y`, in an
/// order shuffled afresh each epoch from `seed` and the epoch number; the
/// last batch of an epoch may be smaller.
pub struct MiniBatches<'a, X: Rows + ?Sized, Y: Rows + ?Sized> {
    x: &'a X,
    y: &'a Y,
    batch_size: usize,
    seed: u64,
}

impl<'a, X: Rows + ?Sized, Y: Rows + ?Sized> MiniBatches<'a, X, Y> {
    /// Batches of `batch_size` rows.
    ///
    /// # Panics
    /// If `x` and `y` have different numbers of rows, or `batch_size` is 0.
    #[track_caller]
    pub fn new(x: &'a X, y: &'a Y, batch_size: usize, seed: u64) -> Self {
        assert_eq!(
            x.len(),
            y.len(),
            "MiniBatches: {} input rows but {} targets",
            x.len(),
            y.len()
        );
        assert!(batch_size > 0, "MiniBatches: batch size must be positive");
        MiniBatches {
            x,
            y,
            batch_size,
            seed,
        }
    }

    /// Number of batches per epoch.
    pub fn len(&self) -> usize {
        self.x.len().div_ceil(self.batch_size)
    }

    /// True if there are no rows at all.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The batches of epoch `epoch`, shuffled with the seed and the epoch.
    pub fn epoch(&self, epoch: usize) -> impl Iterator<Item = (X::Out, Y::Out)> + '_ {
        self.epoch_from(epoch, 0)
    }

    /// Where step `step` (counted from 0, one batch per step) falls:
    /// `(epoch, batch within it)`. With [`MiniBatches::epoch_from`], how a
    /// resumed run picks up the data where it stopped (the shuffle is a
    /// function of the seed and the epoch, so nothing else needs saving).
    ///
    /// ```
    /// use tapegrad::data::MiniBatches;
    /// let (x, y) = (vec![0.0f32; 10], vec![0usize; 10]);
    /// let b = MiniBatches::new(&x, &y, 4, 1); // 3 batches per epoch
    /// assert_eq!(b.position(7), (2, 1));
    /// ```
    pub fn position(&self, step: u64) -> (usize, usize) {
        let per_epoch = self.len().max(1) as u64;
        ((step / per_epoch) as usize, (step % per_epoch) as usize)
    }

    /// The batches of epoch `epoch` from batch `first` on (the rest of an
    /// interrupted epoch).
    pub fn epoch_from(
        &self,
        epoch: usize,
        first: usize,
    ) -> impl Iterator<Item = (X::Out, Y::Out)> + '_ {
        let order = shuffled(self.x.len(), self.seed, epoch);
        let bs = self.batch_size;
        (first.min(self.len())..self.len()).map(move |b| {
            let idx = &order[b * bs..((b + 1) * bs).min(order.len())];
            (self.x.rows(idx), self.y.rows(idx))
        })
    }
}

/// `0..n` in the order epoch `epoch` of a run seeded with `seed` visits
/// it: the one shuffle [`MiniBatches`] and
/// [`ShardedBatches`](super::ShardedBatches) share, so that a sharded run
/// sees the same global batches as a single process.
pub(crate) fn shuffled(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_add(epoch as u64)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15),
    );
    order.shuffle(&mut rng);
    order
}
