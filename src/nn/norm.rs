//! Batch normalisation, as PyTorch's `BatchNorm1d` and `BatchNorm2d`:
//! per-channel statistics over every axis but the channel axis (1), the
//! biased variance in the normalisation, `eps` 1e-5, an affine weight and
//! bias, and running statistics (mean, unbiased variance) updated with
//! momentum 0.1 in training mode and used in evaluation mode. Composed of
//! ops with rules, so its gradient (and grad of grad) is exact.

use super::layers::{join, layer_shape_error};
use super::{BufferId, Module, ParamId, ParamStore};
use crate::tape::Var;
use crate::tensor::{Element, Shape, Tensor};

/// Normalises `x` over every axis but axis 1 with the batch's own
/// statistics, then scales by `weight` and shifts by `bias` (each of shape
/// `(channels,)`, if given). Returns the output, and the batch's mean and
/// biased variance per channel (for running statistics).
///
/// ```
/// use tapegrad::{nn::batch_norm, Tape, Tensor};
/// let tape = Tape::<f64>::new();
/// let x = tape.var(Tensor::from_vec(vec![1.0, 10.0, 3.0, 30.0], [2, 2]));
/// let (y, mean, var) = batch_norm(x, None, None, 0.0);
/// assert_eq!(mean.data(), &[2.0, 20.0]);
/// assert_eq!(var.data(), &[1.0, 100.0]);
/// assert_eq!(y.value().data(), &[-1.0, -1.0, 1.0, 1.0]);
/// ```
///
/// # Panics
/// If `x` has fewer than two axes.
#[track_caller]
pub fn batch_norm<'t, T: Element>(
    x: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    eps: f64,
) -> (Var<'t, T>, Tensor<T>, Tensor<T>) {
    let s = x.shape();
    assert!(
        s.len() >= 2,
        "batch_norm: expects (batch, channels, ...) input, got shape {:?}",
        s.as_slice()
    );
    let axes: Shape = (0..s.len()).filter(|&a| a != 1).collect();
    let mean_over = |v: Var<'t, T>| axes.iter().fold(v, |m, &a| m.mean_axis(a, true));
    let mean = mean_over(x);
    let centred = x - mean;
    let var = mean_over(centred.square());
    let normed = centred / (var + T::lit(eps)).sqrt();
    let y = scale_and_shift(normed, weight, bias);
    let per_channel = |v: Var<'t, T>| v.value().reshape([s[1]]);
    (y, per_channel(mean), per_channel(var))
}

/// The shape `(1, c, 1, …)` of rank `rank`: a per-channel vector set up to
/// broadcast along axis 1 (on the stack, so a training step allocates none).
pub(crate) fn channel_shape(rank: usize, c: usize) -> Shape {
    let mut shape: Shape = std::iter::repeat_n(1, rank).collect();
    shape[1] = c;
    shape
}

/// `y · weight + bias` with `(C,)` weight and bias along axis 1, each if
/// given: batch norm's affine step.
fn scale_and_shift<'t, T: Element>(
    y: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
) -> Var<'t, T> {
    let shape = channel_shape(y.shape().len(), y.shape()[1]);
    let y = match weight {
        Some(w) => y * w.reshape(&shape),
        None => y,
    };
    match bias {
        Some(b) => y + b.reshape(&shape),
        None => y,
    }
}

/// Batch normalisation over `(batch, channels, …)` inputs: `BatchNorm1d`
/// for `(N, C)` or `(N, C, L)`, `BatchNorm2d` for `(N, C, H, W)`. Its
/// parameters and buffers carry PyTorch's names: `weight`, `bias`,
/// `running_mean`, `running_var`, `num_batches_tracked`.
///
/// ```
/// use tapegrad::nn::{BatchNorm, Module, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f32>::new();
/// let bn = BatchNorm::new_2d(&mut params, "bn", 3);
/// let tape = Tape::new();
/// let x = tape.constant(Tensor::rand_uniform([4, 3, 5, 5], 0.0, 2.0, 1));
/// let y = bn.forward(&params, x);            // training: batch statistics
/// assert_eq!(y.shape().as_slice(), &[4, 3, 5, 5]);
/// assert_eq!(params.buffer(bn.num_batches_tracked).item(), 1.0);
/// assert!(params.buffer(bn.running_mean).data()[0] > 0.05); // moved towards ~1
/// params.eval();                              // evaluation: running statistics
/// let _ = bn.forward(&params, x);
/// assert_eq!(params.buffer(bn.num_batches_tracked).item(), 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm {
    /// Scale `(C,)`, initialised to ones (`None` without affine).
    pub weight: Option<ParamId>,
    /// Shift `(C,)`, initialised to zeros.
    pub bias: Option<ParamId>,
    /// Running mean `(C,)`, from zeros.
    pub running_mean: BufferId,
    /// Running unbiased variance `(C,)`, from ones.
    pub running_var: BufferId,
    /// Number of training forwards seen.
    pub num_batches_tracked: BufferId,
    /// Channels.
    pub features: usize,
    /// Added to the variance (1e-5).
    pub eps: f64,
    /// Weight of the newest batch in the running statistics (0.1).
    pub momentum: f64,
    /// The input ranks this layer accepts.
    ranks: &'static [usize],
    kind: &'static str,
}

impl BatchNorm {
    /// `BatchNorm2d(features)`: inputs `(N, C, H, W)`.
    pub fn new_2d<T: Element>(params: &mut ParamStore<T>, name: &str, features: usize) -> Self {
        Self::build(params, name, features, &[4], "BatchNorm2d")
    }

    /// `BatchNorm1d(features)`: inputs `(N, C)` or `(N, C, L)`.
    pub fn new_1d<T: Element>(params: &mut ParamStore<T>, name: &str, features: usize) -> Self {
        Self::build(params, name, features, &[2, 3], "BatchNorm1d")
    }

    fn build<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        features: usize,
        ranks: &'static [usize],
        kind: &'static str,
    ) -> Self {
        BatchNorm {
            weight: Some(params.add(join(name, "weight"), Tensor::ones([features]))),
            bias: Some(params.add(join(name, "bias"), Tensor::zeros([features]))),
            running_mean: params.add_buffer(join(name, "running_mean"), Tensor::zeros([features])),
            running_var: params.add_buffer(join(name, "running_var"), Tensor::ones([features])),
            num_batches_tracked: params
                .add_buffer(join(name, "num_batches_tracked"), Tensor::scalar(T::zero())),
            features,
            eps: 1e-5,
            momentum: 0.1,
            ranks,
            kind,
        }
    }

    /// Folds a batch's statistics into the running ones: PyTorch's update,
    /// with the variance made unbiased over the `n` values per channel.
    fn update<T: Element>(
        &self,
        params: &ParamStore<T>,
        mean: &Tensor<T>,
        var: &Tensor<T>,
        n: usize,
    ) {
        let m = T::lit(self.momentum);
        let unbias = T::lit(n as f64 / (n as f64 - 1.0));
        let blend = |old: &Tensor<T>, new: &Tensor<T>, k: T| {
            old.zip_map(new, |o, v| (T::one() - m) * o + m * v * k)
                .expect("running statistics and batch statistics have one shape")
        };
        let rm = blend(&params.buffer(self.running_mean), mean, T::one());
        let rv = blend(&params.buffer(self.running_var), var, unbias);
        params.set_buffer(self.running_mean, rm);
        params.set_buffer(self.running_var, rv);
        let seen = params.buffer(self.num_batches_tracked).item();
        params.set_buffer(self.num_batches_tracked, Tensor::scalar(seen + T::one()));
    }
}

impl<T: Element> Module<T> for BatchNorm {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        let s = x.shape();
        let name = params
            .buffer_name(self.running_mean)
            .trim_end_matches(".running_mean");
        if !self.ranks.contains(&s.len()) || s[1] != self.features {
            let expected = match self.ranks {
                [4] => format!("[batch, {}, height, width]", self.features),
                _ => format!("[batch, {0}] or [batch, {0}, length]", self.features),
            };
            layer_shape_error(
                self.kind,
                name,
                &format!("{} channels", self.features),
                &expected,
                x,
            );
        }
        let tape = x.tape();
        let w = self.weight.map(|id| params.var(tape, id));
        let b = self.bias.map(|id| params.var(tape, id));
        if params.is_training() {
            let n = s.iter().product::<usize>() / self.features;
            assert!(
                n > 1,
                "{} `{name}`: expected more than 1 value per channel when training, got input of shape {:?} (use params.eval() for single samples)",
                self.kind,
                s.as_slice()
            );
            let (y, mean, var) = batch_norm(x, w, b, self.eps);
            self.update(params, &mean, &var, n);
            return y;
        }
        // Evaluation: the running statistics, as constants.
        let shape = channel_shape(s.len(), self.features);
        let mean = params.buffer_var(tape, self.running_mean).reshape(&shape);
        let var = params.buffer_var(tape, self.running_var).reshape(&shape);
        scale_and_shift((x - mean) / (var + T::lit(self.eps)).sqrt(), w, b)
    }

    fn parameters(&self) -> Vec<ParamId> {
        self.weight.into_iter().chain(self.bias).collect()
    }
}

/// `nn.BatchNorm2d`: a [`BatchNorm`] over `(N, C, H, W)` inputs.
///
/// ```
/// use tapegrad::nn::{BatchNorm2d, ParamStore};
/// let mut params = ParamStore::<f32>::new();
/// let bn = BatchNorm2d::new(&mut params, "features.1", 16);
/// assert!(params.buffer_id("features.1.running_var").is_some());
/// # let _ = bn;
/// ```
pub struct BatchNorm2d;

impl BatchNorm2d {
    /// Batch normalisation of `features` channels, named `name.*`. (Named
    /// after PyTorch's class; the layer itself is a [`BatchNorm`].)
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: Element>(params: &mut ParamStore<T>, name: &str, features: usize) -> BatchNorm {
        BatchNorm::new_2d(params, name, features)
    }
}

/// `nn.BatchNorm1d`: a [`BatchNorm`] over `(N, C)` or `(N, C, L)` inputs.
pub struct BatchNorm1d;

impl BatchNorm1d {
    /// Batch normalisation of `features` channels, named `name.*`. (Named
    /// after PyTorch's class; the layer itself is a [`BatchNorm`].)
    #[allow(clippy::new_ret_no_self)]
    pub fn new<T: Element>(params: &mut ParamStore<T>, name: &str, features: usize) -> BatchNorm {
        BatchNorm::new_1d(params, name, features)
    }
}
