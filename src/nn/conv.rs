//! Convolutional layers, pooling layers and `Flatten`, named and
//! initialised as PyTorch's (`name.weight`, `name.bias`; weights and biases
//! U(±1/√fan_in)), so a PyTorch state dict loads into them.

use super::layers::{join, layer_shape_error};
use super::norm::channel_shape;
use super::{Init, Module, ParamId, ParamStore};
use crate::ops::Pool2d;
use crate::tape::Var;
use crate::tensor::{Conv2dGeom, Element};

/// A weight of `shape` and a bias of `out` elements, U(±1/√fan_in) as
/// PyTorch initialises its convolutions.
fn weight_and_bias<T: Element>(
    params: &mut ParamStore<T>,
    name: &str,
    shape: &[usize],
    fan_in: usize,
    out: usize,
    bias: bool,
    seed: u64,
) -> (ParamId, Option<ParamId>) {
    let init = Init::LecunUniform;
    let w = params.add(join(name, "weight"), init.tensor(shape, fan_in, out, seed));
    let b = bias.then(|| {
        let t = init.tensor(&[out], fan_in, out, seed ^ 0xb1a5);
        params.add(join(name, "bias"), t)
    });
    (w, b)
}

/// Panics unless both channel counts are multiples of the groups.
#[track_caller]
fn check_groups(layer: &str, in_channels: usize, out_channels: usize, g: usize) {
    assert!(
        g > 0 && in_channels.is_multiple_of(g) && out_channels.is_multiple_of(g),
        "{layer}::new: {in_channels} input and {out_channels} output channels must be multiples of groups = {g}"
    );
}

/// Panics at the caller's line unless `x` has `rank` axes and `in` channels
/// along axis 1; `spatial` names the other axes in the message.
#[track_caller]
fn check_input<T: Element>(
    params: &ParamStore<T>,
    kind: &str,
    weight: ParamId,
    [cin, cout]: [usize; 2],
    spatial: &str,
    rank: usize,
    x: Var<'_, T>,
) {
    let s = x.shape();
    if s.len() != rank || s[1] != cin {
        layer_shape_error(
            kind,
            params.name(weight).trim_end_matches(".weight"),
            &format!("{cin} → {cout} channels"),
            &format!("[batch, {cin}, {spatial}]"),
            x,
        );
    }
}

/// Adds a `(out,)` bias along axis 1 of `y`.
fn add_bias<'t, T: Element>(
    params: &ParamStore<T>,
    y: Var<'t, T>,
    bias: Option<ParamId>,
) -> Var<'t, T> {
    match bias {
        None => y,
        Some(b) => {
            let shape = channel_shape(y.shape().len(), params.value(b).numel());
            y + params.var(y.tape(), b).reshape(shape)
        }
    }
}

/// `nn.Conv2d`: a 2-d convolution over `(batch, in, h, w)` inputs with an
/// `(out, in/groups, kh, kw)` weight and an `(out,)` bias.
///
/// ```
/// use tapegrad::nn::{Conv2d, Module, ParamStore};
/// use tapegrad::{tensor::Conv2dGeom, Tape, Tensor};
/// let mut params = ParamStore::<f32>::new();
/// let conv = Conv2d::new(&mut params, "features.0", 1, 8, [3, 3], Conv2dGeom { padding: [1, 1], ..Default::default() }, 1);
/// let tape = Tape::new();
/// let y = conv.forward(&params, tape.constant(Tensor::zeros([4, 1, 28, 28])));
/// assert_eq!(y.shape().as_slice(), &[4, 8, 28, 28]);
/// assert_eq!(params.value(conv.weight).shape(), &[8, 1, 3, 3]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// The `(out, in/groups, kh, kw)` weight.
    pub weight: ParamId,
    /// The `(out,)` bias, if any.
    pub bias: Option<ParamId>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride, padding, dilation and groups.
    pub geom: Conv2dGeom,
}

impl Conv2d {
    /// A layer with bias.
    ///
    /// # Panics
    /// If the channel counts are not multiples of `geom.groups`.
    #[track_caller]
    pub fn new<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        geom: Conv2dGeom,
        seed: u64,
    ) -> Self {
        Self::with_bias(
            params,
            name,
            in_channels,
            out_channels,
            kernel,
            geom,
            true,
            seed,
        )
    }

    /// A layer with or without bias.
    ///
    /// # Panics
    /// If the channel counts are not multiples of `geom.groups`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn with_bias<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        geom: Conv2dGeom,
        bias: bool,
        seed: u64,
    ) -> Self {
        let g = geom.groups;
        check_groups("Conv2d", in_channels, out_channels, g);
        let shape = [out_channels, in_channels / g, kernel[0], kernel[1]];
        let fan_in = in_channels / g * kernel[0] * kernel[1];
        let (weight, bias) =
            weight_and_bias(params, name, &shape, fan_in, out_channels, bias, seed);
        Conv2d {
            weight,
            bias,
            in_channels,
            out_channels,
            geom,
        }
    }
}

impl<T: Element> Module<T> for Conv2d {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        check_input(
            params,
            "Conv2d",
            self.weight,
            [self.in_channels, self.out_channels],
            "height, width",
            4,
            x,
        );
        let y = x.conv2d(params.var(x.tape(), self.weight), self.geom);
        add_bias(params, y, self.bias)
    }

    fn parameters(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
}

/// `nn.Conv1d`: a 1-d convolution over `(batch, in, length)` inputs with an
/// `(out, in/groups, k)` weight (a 2-d convolution of height 1 inside).
///
/// ```
/// use tapegrad::nn::{Conv1d, Module, ParamStore};
/// use tapegrad::{Tape, Tensor};
/// let mut params = ParamStore::<f32>::new();
/// let conv = Conv1d::new(&mut params, "c", 2, 4, 3, 1, 1, 1);
/// let tape = Tape::new();
/// let y = conv.forward(&params, tape.constant(Tensor::zeros([5, 2, 10])));
/// assert_eq!(y.shape().as_slice(), &[5, 4, 10]);
/// ```
#[derive(Clone, Debug)]
pub struct Conv1d {
    /// The `(out, in/groups, k)` weight.
    pub weight: ParamId,
    /// The `(out,)` bias.
    pub bias: Option<ParamId>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel length.
    pub kernel: usize,
    /// The geometry of the height-1 2-d convolution inside: stride and
    /// padding along the length (its second axis), one group.
    pub geom: Conv2dGeom,
}

impl Conv1d {
    /// A layer with bias, stride `stride`, padding `padding` and one group.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn new<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
        seed: u64,
    ) -> Self {
        let geom = Conv2dGeom {
            stride: [1, stride],
            padding: [0, padding],
            dilation: [1, 1],
            groups: 1,
        };
        let shape = [out_channels, in_channels, kernel];
        let (weight, bias) = weight_and_bias(
            params,
            name,
            &shape,
            in_channels * kernel,
            out_channels,
            true,
            seed,
        );
        Conv1d {
            weight,
            bias,
            in_channels,
            out_channels,
            kernel,
            geom,
        }
    }
}

impl<T: Element> Module<T> for Conv1d {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        let s = x.shape();
        check_input(
            params,
            "Conv1d",
            self.weight,
            [self.in_channels, self.out_channels],
            "length",
            3,
            x,
        );
        let ws = params.value(self.weight).shape().to_vec();
        let w = params
            .var(x.tape(), self.weight)
            .reshape([ws[0], ws[1], 1, ws[2]]);
        let y = x.reshape([s[0], s[1], 1, s[2]]).conv2d(w, self.geom);
        let ys = y.shape();
        add_bias(params, y.reshape([ys[0], ys[1], ys[3]]), self.bias)
    }

    fn parameters(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
}

/// `nn.ConvTranspose2d`: weight `(in, out/groups, kh, kw)`, bias `(out,)`.
///
/// ```
/// use tapegrad::nn::{ConvTranspose2d, Module, ParamStore};
/// use tapegrad::{tensor::Conv2dGeom, Tape, Tensor};
/// let mut params = ParamStore::<f32>::new();
/// let geom = Conv2dGeom { stride: [2, 2], padding: [1, 1], ..Default::default() };
/// let up = ConvTranspose2d::new(&mut params, "up", 8, 4, [3, 3], geom, [1, 1], 1);
/// let tape = Tape::new();
/// let y = up.forward(&params, tape.constant(Tensor::zeros([2, 8, 7, 7])));
/// assert_eq!(y.shape().as_slice(), &[2, 4, 14, 14]);
/// ```
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// The `(in, out/groups, kh, kw)` weight.
    pub weight: ParamId,
    /// The `(out,)` bias.
    pub bias: Option<ParamId>,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Stride, padding, dilation and groups.
    pub geom: Conv2dGeom,
    /// Extra rows and columns at the end of the output.
    pub output_padding: [usize; 2],
}

impl ConvTranspose2d {
    /// A layer with bias.
    ///
    /// # Panics
    /// If the channel counts are not multiples of `geom.groups`.
    #[allow(clippy::too_many_arguments)]
    #[track_caller]
    pub fn new<T: Element>(
        params: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: [usize; 2],
        geom: Conv2dGeom,
        output_padding: [usize; 2],
        seed: u64,
    ) -> Self {
        let g = geom.groups;
        check_groups("ConvTranspose2d", in_channels, out_channels, g);
        let shape = [in_channels, out_channels / g, kernel[0], kernel[1]];
        // PyTorch's fan-in of a transposed convolution's weight: its second
        // axis times the kernel.
        let fan_in = out_channels / g * kernel[0] * kernel[1];
        let (weight, bias) =
            weight_and_bias(params, name, &shape, fan_in, out_channels, true, seed);
        ConvTranspose2d {
            weight,
            bias,
            in_channels,
            out_channels,
            geom,
            output_padding,
        }
    }
}

impl<T: Element> Module<T> for ConvTranspose2d {
    #[track_caller]
    fn forward<'t>(&self, params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        check_input(
            params,
            "ConvTranspose2d",
            self.weight,
            [self.in_channels, self.out_channels],
            "height, width",
            4,
            x,
        );
        let w = params.var(x.tape(), self.weight);
        let y = x.conv_transpose2d(w, self.geom, self.output_padding);
        add_bias(params, y, self.bias)
    }

    fn parameters(&self) -> Vec<ParamId> {
        std::iter::once(self.weight).chain(self.bias).collect()
    }
}

/// `nn.MaxPool2d`.
///
/// ```
/// use tapegrad::nn::{MaxPool2d, Module, ParamStore};
/// use tapegrad::{ops::Pool2d, Tape, Tensor};
/// let params = ParamStore::<f32>::new();
/// let tape = Tape::new();
/// let y = MaxPool2d(Pool2d::square(2)).forward(&params, tape.constant(Tensor::zeros([1, 3, 8, 8])));
/// assert_eq!(y.shape().as_slice(), &[1, 3, 4, 4]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d(pub Pool2d);

impl<T: Element> Module<T> for MaxPool2d {
    #[track_caller]
    fn forward<'t>(&self, _params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        x.max_pool2d(self.0)
    }
}

/// `nn.AvgPool2d` (padded zeros counted, PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d(pub Pool2d);

impl<T: Element> Module<T> for AvgPool2d {
    #[track_caller]
    fn forward<'t>(&self, _params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        x.avg_pool2d(self.0)
    }
}

/// `nn.AdaptiveAvgPool2d` to an output size (`[1, 1]`: the global average
/// pool).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d(pub [usize; 2]);

impl<T: Element> Module<T> for AdaptiveAvgPool2d {
    #[track_caller]
    fn forward<'t>(&self, _params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        x.adaptive_avg_pool2d(self.0)
    }
}

/// `nn.Flatten(start_dim)`: axes from `start` on become one (1 keeps the
/// batch axis, PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten(pub usize);

impl Default for Flatten {
    fn default() -> Self {
        Flatten(1)
    }
}

impl<T: Element> Module<T> for Flatten {
    #[track_caller]
    fn forward<'t>(&self, _params: &ParamStore<T>, x: Var<'t, T>) -> Var<'t, T> {
        x.flatten(self.0)
    }
}
