//! Layers: Linear, activations, an MLP builder, Dropout and LayerNorm.

use super::{Init, Module, ParamId, ParamStore, RngId, Sequential};
use crate::tape::Var;
use crate::tensor::{Element, Tensor};
use rand::Rng;

/// Joins a prefix and a name with a dot (no dot after an empty prefix).
pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Panics for a layer fed an input of the wrong shape: the layer's kind
/// and name, what it expects, what it got.
#[cold]
#[track_caller]
pub(crate) fn layer_shape_error<T: Element>(
    kind: &str,
    name: &str,
    what: &str,
    expected: &str,
    x: Var<'_, T>,
) -> ! {
    panic!(
        "{kind} `{name}` ({what}) expects input of shape {expected}, but {} has shape {:?}",
        x.label(),
        x.shape().as_slice()
    )
}

/// `y = x·Wᵀ + b`, with the weight stored as `(out, in)` like PyTorch's
/// `nn.Linear` (so checkpoints map one to one).
#[derive(Clone, Debug)]
pub struct Linear {
    /// The `(out, in)` weight.
    pub weight: ParamId,
    /// The `(out,)` bias, if any.
    pub bias: Option<ParamId>,
    /// Input features.
    pub in_features: usize,
    /// Output features.
    pub out_features: usize,
}

impl Linear {
    /// A layer with bias, initialised as PyTorch does (U(±1/√in) for the
    /// weight and the bias). Parameters are named `name.weight` and
    /// `name.bias`.
    pub fn new<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        seed: u64,
    ) -> Self {
        Self::with_init(
            params,
            name,
            in_features,
            out_features,
            true,
            Init::LecunUniform,
            seed,
        )
    }

    /// A layer with a chosen weight initialisation, with or without bias
    /// (the bias, if any, starts at zero unless `init` is the PyTorch
    /// default).
    pub fn with_init<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        init: Init,
        seed: u64,
    ) -> Self {
        let w = init.tensor(
            &[out_features, in_features],
            in_features,
            out_features,
            seed,
        );
        let weight = params.add(join(name, "weight"), w);
        let bias = bias.then(|| {
            let b = match init {
                Init::LecunUniform => {
                    init.tensor(&[out_features], in_features, out_features, seed ^ 0xb1a5)
                }
                _ => Tensor::zeros([out_features]),
            };
            params.add(join(name, "bias"), b)
        });
        Linear {
            weight,
            bias,
            in_features,
            out_features,
        }
    }
}

impl<T: Element> Module<T> for Linear {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        let shape = x.shape();
        if !(2..=3).contains(&shape.len()) || shape[shape.len() - 1] != self.in_features {
            layer_shape_error(
                "Linear",
                params.name(self.weight).trim_end_matches(".weight"),
                &format!("{} → {} features", self.in_features, self.out_features),
                &format!(
                    "[batch, {0}] or [batch, rows, {0}] (one sample: reshape to [1, {0}])",
                    self.in_features
                ),
                x,
            );
        }
        let y = x.matmul_t(params.var(x.tape(), self.weight), false, true);
        match self.bias {
            Some(b) => y + params.var(x.tape(), b),
            None => y,
        }
    }

    fn parameters(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
}

/// Elementwise activations, as layers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`
    Identity,
    /// `1 / (1 + e^-x)`
    Sigmoid,
    /// `tanh x`
    Tanh,
    /// `max(x, 0)`
    Relu,
    /// `x` if positive, else `slope · x`
    LeakyRelu(f64),
    /// `ln(1 + e^x)`
    Softplus,
    /// `x · Φ(x) = x/2 · (1 + erf(x/√2))`, the exact GELU.
    Gelu,
}

impl Activation {
    /// Applies the activation.
    pub fn apply<'t, T: Element>(&self, x: Var<'t, T>) -> Var<'t, T> {
        match *self {
            Activation::Identity => x,
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Relu => x.relu(),
            Activation::LeakyRelu(s) => x.leaky_relu_with(T::lit(s)),
            Activation::Softplus => x.softplus(),
            Activation::Gelu => {
                x * ((x * T::lit(std::f64::consts::FRAC_1_SQRT_2)).erf() + T::one()) * T::lit(0.5)
            }
        }
    }
}

impl<T: Element> Module<T> for Activation {
    fn forward<'t>(&self, _params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.apply(x)
    }
}

/// A multilayer perceptron: Linear layers with an activation between them
/// (none after the last), named like PyTorch's `nn.Sequential`
/// (`name.0.weight`, `name.2.weight`, …).
///
/// ```
/// use tapegrad::nn::{Activation, Mlp, Module, ParamStore};
/// let mut params = ParamStore::<f32>::new();
/// let mlp = Mlp::new(&mut params, "mlp", &[784, 256, 10], Activation::Relu, 42);
/// assert!(params.id("mlp.2.weight").is_some());
/// assert_eq!(params.num_elements(), 784 * 256 + 256 + 256 * 10 + 10);
/// # let _ = mlp.parameters();
/// ```
pub struct Mlp<T: Element> {
    layers: Sequential<T>,
}

impl<T: Element> Mlp<T> {
    /// Layers of the given sizes (`[in, hidden…, out]`), initialised from
    /// `seed` (each layer from its own derived seed).
    ///
    /// # Panics
    /// If fewer than two sizes are given.
    #[track_caller]
    pub fn new(
        params: &mut ParamStore<T>,
        name: &str,
        sizes: &[usize],
        activation: Activation,
        seed: u64,
    ) -> Self {
        Self::with_dropout(params, name, sizes, activation, 0.0, seed)
    }

    /// Like [`Mlp::new`], with [`Dropout`] of probability `p` after each
    /// hidden activation (none if `p` is 0). Layers are then named as in
    /// the PyTorch `nn.Sequential(Linear, act, Dropout, Linear, …)`:
    /// `name.0`, `name.3`, `name.6`, ….
    ///
    /// ```
    /// use tapegrad::nn::{Activation, Mlp, ParamStore};
    /// let mut params = ParamStore::<f32>::new();
    /// Mlp::with_dropout(&mut params, "mlp", &[784, 512, 10], Activation::Relu, 0.2, 1);
    /// assert!(params.id("mlp.3.weight").is_some());
    /// ```
    ///
    /// # Panics
    /// If fewer than two sizes are given, or `p` is outside `[0, 1)`.
    #[track_caller]
    pub fn with_dropout(
        params: &mut ParamStore<T>,
        name: &str,
        sizes: &[usize],
        activation: Activation,
        p: f64,
        seed: u64,
    ) -> Self {
        assert!(
            sizes.len() >= 2,
            "Mlp::new: needs at least an input and an output size, got {sizes:?}"
        );
        assert!(
            (0.0..1.0).contains(&p),
            "Mlp::with_dropout: p = {p} is not in [0, 1)"
        );
        let mut layers = Sequential::new();
        let stride = if p > 0.0 { 3 } else { 2 };
        for (i, w) in sizes.windows(2).enumerate() {
            let layer_seed = seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(i as u64);
            layers = layers.add(Linear::new(
                params,
                &join(name, &(stride * i).to_string()),
                w[0],
                w[1],
                layer_seed,
            ));
            if i + 2 < sizes.len() {
                layers = layers.add(activation);
                if p > 0.0 {
                    let at = join(name, &(stride * i + 2).to_string());
                    layers = layers.add(Dropout::new(params, &at, p, layer_seed ^ 0xd0));
                }
            }
        }
        Mlp { layers }
    }
}

impl<T: Element> Module<T> for Mlp<T> {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        self.layers.forward(params, x)
    }
    fn parameters(&self) -> Vec<ParamId> {
        self.layers.parameters()
    }
}

/// Zeroes each element with probability `p` in training mode and scales
/// the rest by `1/(1-p)`; the identity in evaluation mode (the store's
/// mode: [`ParamStore::eval`]). Its random stream comes from a seed, so
/// runs repeat exactly.
///
/// ```
/// use tapegrad::nn::{Dropout, Module, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f32>::new();
/// let drop = Dropout::new(&mut params, "drop", 0.5, 7);
/// let tape = Tape::new();
/// let y = drop.forward(&params, tape.constant(Tensor::ones([1000]))).value();
/// assert!(y.data().iter().all(|&v| v == 0.0 || v == 2.0));
/// ```
#[derive(Clone, Debug)]
pub struct Dropout {
    p: f64,
    rng: RngId,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)`, drawing its masks from a
    /// random stream `name` of `params` seeded with `seed` (so that
    /// checkpoints save where it is).
    ///
    /// # Panics
    /// If `p` is outside `[0, 1)`, or the store has a stream called `name`.
    #[track_caller]
    pub fn new<T: Element>(params: &mut ParamStore<T>, name: &str, p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout::new: p = {p} is not in [0, 1)"
        );
        Dropout {
            p,
            rng: params.add_rng(name, seed),
        }
    }
}

impl<T: Element> Module<T> for Dropout {
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        if !params.is_training() || self.p == 0.0 {
            return x;
        }
        x * x
            .tape()
            .constant(dropout_mask(params, self.rng, self.p, &x.shape()))
    }
}

/// A mask of `shape`: each entry 0 with probability `p`, else `1/(1 - p)`
/// (so that the expected output equals the input), from stream `rng`.
fn dropout_mask<T: Element>(
    params: &ParamStore<T>,
    rng: RngId,
    p: f64,
    shape: &[usize],
) -> Tensor<T> {
    let keep = T::lit(1.0 / (1.0 - p));
    let mut rng = params.rng(rng);
    Tensor::from_fn(shape, |_| {
        if rng.random::<f64>() < p {
            T::zero()
        } else {
            keep
        }
    })
}

/// Channel dropout, as PyTorch's `nn.Dropout2d`: in training mode each
/// whole channel of each image of an `(N, C, H, W)` input is zeroed with
/// probability `p` and the others scaled by `1/(1 - p)`; in evaluation
/// mode the input passes unchanged. Neighbouring pixels of a feature map
/// are strongly correlated, so dropping single pixels regularises a
/// convolutional layer little; dropping its channels does.
///
/// ```
/// use tapegrad::nn::{Dropout2d, Module, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f64>::new();
/// let drop = Dropout2d::new(&mut params, "drop", 0.5, 7);
/// let tape = Tape::new();
/// let y = drop.forward(&params, tape.constant(Tensor::ones([2, 8, 3, 3]))).value();
/// // Every 3×3 plane is all zeros or all twos.
/// for plane in y.data().chunks(9) {
///     assert!(plane.iter().all(|&v| v == plane[0]) && (plane[0] == 0.0 || plane[0] == 2.0));
/// }
/// params.eval();
/// let y = drop.forward(&params, tape.constant(Tensor::ones([2, 8, 3, 3])));
/// assert!(y.value().data().iter().all(|&v| v == 1.0));
/// ```
#[derive(Clone, Debug)]
pub struct Dropout2d {
    p: f64,
    rng: RngId,
}

impl Dropout2d {
    /// Channel dropout with probability `p` in `[0, 1)`, its masks from a
    /// random stream `name` of `params` seeded with `seed`.
    ///
    /// # Panics
    /// If `p` is outside `[0, 1)`, or the store has a stream called `name`.
    #[track_caller]
    pub fn new<T: Element>(params: &mut ParamStore<T>, name: &str, p: f64, seed: u64) -> Self {
        assert!(
            (0.0..1.0).contains(&p),
            "Dropout2d::new: p = {p} is not in [0, 1)"
        );
        Dropout2d {
            p,
            rng: params.add_rng(name, seed),
        }
    }
}

impl<T: Element> Module<T> for Dropout2d {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        let s = x.shape();
        if s.len() != 4 {
            layer_shape_error(
                "Dropout2d",
                params.rng_name(self.rng),
                "whole channels",
                "[batch, channels, height, width]",
                x,
            );
        }
        if !params.is_training() || self.p == 0.0 {
            return x;
        }
        let mask = dropout_mask(params, self.rng, self.p, &[s[0], s[1], 1, 1]);
        x * x.tape().constant(mask)
    }
}

/// Normalises over the last dimension to zero mean and unit variance, then
/// scales and shifts by learned `(features,)` weight and bias.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// Scale, initialised to ones.
    pub weight: ParamId,
    /// Shift, initialised to zeros.
    pub bias: ParamId,
    /// Added to the variance before the square root.
    pub eps: f64,
}

impl LayerNorm {
    /// Layer normalisation over `features` (the last dimension), eps 1e-5.
    pub fn new<T: Element>(params: &mut ParamStore<T>, name: &str, features: usize) -> Self {
        LayerNorm {
            weight: params.add(join(name, "weight"), Tensor::ones([features])),
            bias: params.add(join(name, "bias"), Tensor::zeros([features])),
            eps: 1e-5,
        }
    }
}

impl<T: Element> Module<T> for LayerNorm {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        let features = params.value(self.weight).numel();
        let shape = x.shape();
        if shape.is_empty() || shape[shape.len() - 1] != features {
            layer_shape_error(
                "LayerNorm",
                params.name(self.weight).trim_end_matches(".weight"),
                &format!("over {features} features"),
                &format!("[..., {features}]"),
                x,
            );
        }
        let last = shape.len() - 1;
        let centred = x - x.mean_axis(last, true);
        let var = centred.square().mean_axis(last, true);
        let normed = centred / (var + T::lit(self.eps)).sqrt();
        normed * params.var(x.tape(), self.weight) + params.var(x.tape(), self.bias)
    }

    fn parameters(&self) -> Vec<ParamId> {
        vec![self.weight, self.bias]
    }
}
