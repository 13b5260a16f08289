//! Seeded random tensors. ChaCha8 is used because its stream is fixed
//! across versions and platforms: the same seed gives the same tensor.

use super::{numel, Buffer, Element, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

impl<T: Element> Tensor<T> {
    /// Elements drawn uniformly from `[low, high)` with a fixed seed.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::<f32>::rand_uniform([2, 3], -1.0, 1.0, 42);
    /// assert_eq!(a, Tensor::rand_uniform([2, 3], -1.0, 1.0, 42));
    /// assert!(a.data().iter().all(|v| (-1.0..1.0).contains(v)));
    /// ```
    pub fn rand_uniform(shape: impl AsRef<[usize]>, low: T, high: T, seed: u64) -> Self {
        let shape = Shape::from_slice(shape.as_ref());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = numel(&shape);
        let data = Buffer::collect_n(
            n,
            (0..n).map(|_| {
                let u: f64 = rng.random();
                let v = low + (high - low) * T::lit(u);
                // Rounding to f32 can land on `high`; keep the interval half-open.
                if v >= high {
                    low
                } else {
                    v
                }
            }),
        );
        Tensor::from_parts(shape, data)
    }

    /// Elements drawn from the standard normal distribution with a fixed seed.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let z = Tensor::<f64>::randn([1000], 7);
    /// let mean = z.data().iter().sum::<f64>() / 1000.0;
    /// assert!(mean.abs() < 0.1);
    /// ```
    pub fn randn(shape: impl AsRef<[usize]>, seed: u64) -> Self {
        Self::rand_normal(shape, T::zero(), T::one(), seed)
    }

    /// Elements drawn from a normal distribution with the given mean and
    /// standard deviation, with a fixed seed.
    pub fn rand_normal(shape: impl AsRef<[usize]>, mean: T, std: T, seed: u64) -> Self {
        let shape = Shape::from_slice(shape.as_ref());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = numel(&shape);
        let data = Buffer::collect_n(
            n,
            (0..n).map(|_| {
                let z: f64 = StandardNormal.sample(&mut rng);
                mean + std * T::lit(z)
            }),
        );
        Tensor::from_parts(shape, data)
    }
}
