//! Weight initialisation, always from an explicit seed: the same seed gives
//! bit-identical tensors on every run and platform.

use crate::tensor::{Element, Tensor};

/// How to fill a new parameter. `fan_in` and `fan_out` are the number of
/// inputs and outputs of the layer (for a `(out, in)` weight: `in`, `out`).
///
/// ```
/// use tapegrad::nn::Init;
/// let w = Init::KaimingUniform.tensor::<f32>(&[64, 128], 128, 64, 7);
/// let bound = (6.0f32 / 128.0).sqrt();
/// assert!(w.data().iter().all(|v| v.abs() <= bound));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Glorot & Bengio: U(±√(6 / (fan_in + fan_out))).
    XavierUniform,
    /// Glorot & Bengio: N(0, 2 / (fan_in + fan_out)).
    XavierNormal,
    /// He et al., for ReLU: U(±√(6 / fan_in)).
    KaimingUniform,
    /// He et al., for ReLU: N(0, 2 / fan_in).
    KaimingNormal,
    /// PyTorch's default for `nn.Linear`: U(±1/√fan_in).
    LecunUniform,
    /// All zeros.
    Zeros,
    /// Every element the same number.
    Constant(f64),
}

impl Init {
    /// A tensor of `shape` filled by this rule.
    pub fn tensor<T: Element>(
        &self,
        shape: &[usize],
        fan_in: usize,
        fan_out: usize,
        seed: u64,
    ) -> Tensor<T> {
        let (fi, fo) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let uniform = |bound: f64| Tensor::rand_uniform(shape, T::lit(-bound), T::lit(bound), seed);
        let normal = |std: f64| Tensor::rand_normal(shape, T::zero(), T::lit(std), seed);
        match self {
            Init::XavierUniform => uniform((6.0 / (fi + fo)).sqrt()),
            Init::XavierNormal => normal((2.0 / (fi + fo)).sqrt()),
            Init::KaimingUniform => uniform((6.0 / fi).sqrt()),
            Init::KaimingNormal => normal((2.0 / fi).sqrt()),
            Init::LecunUniform => uniform(1.0 / fi.sqrt()),
            Init::Zeros => Tensor::zeros(shape),
            Init::Constant(c) => Tensor::full(shape, T::lit(*c)),
        }
    }
}
