//! Seeded train/test splits and standardisation.

use crate::tensor::{Element, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Shuffles `0..n` with `seed` and splits off `test_fraction` of it:
/// `(train indices, test indices)`.
///
/// ```
/// let (train, test) = tapegrad::data::train_test_split(10, 0.3, 1);
/// assert_eq!((train.len(), test.len()), (7, 3));
/// ```
pub fn train_test_split(n: usize, test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = ((n as f64) * test_fraction).round() as usize;
    let test = idx.split_off(n - n_test.min(n));
    (idx, test)
}

/// Per-column mean and standard deviation of a `(rows, columns)` tensor,
/// to scale columns to zero mean and unit variance. Fit on the training
/// rows only, then apply to both sets.
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer<T: Element> {
    /// Column means.
    pub mean: Tensor<T>,
    /// Column standard deviations (1 where a column is constant).
    pub std: Tensor<T>,
}

impl<T: Element> Standardizer<T> {
    /// Learns the column statistics.
    pub fn fit(x: &Tensor<T>) -> Self {
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let nf = T::from_usize(n.max(1)).unwrap();
        let mean = x.sum_axis(0, false).map(|s| s / nf);
        let std = Tensor::from_fn([d], |j| {
            let m = mean.data()[j[0]];
            let var = (0..n)
                .map(|i| (x.get(&[i, j[0]]) - m).powi(2))
                .fold(T::zero(), |a, b| a + b)
                / nf;
            if var > T::zero() {
                var.sqrt()
            } else {
                T::one()
            }
        });
        Standardizer { mean, std }
    }

    /// `(x - mean) / std`, column by column.
    pub fn transform(&self, x: &Tensor<T>) -> Tensor<T> {
        let d = self.mean.numel();
        let mut out = x.clone();
        for (k, v) in out.data_mut().iter_mut().enumerate() {
            let j = k % d;
            *v = (*v - self.mean.data()[j]) / self.std.data()[j];
        }
        out
    }
}
