//! 2-d convolution, NCHW as PyTorch: `conv2d`, its adjoint in the input
//! (`conv_transpose2d`) and its adjoint in the weight, each an op with its
//! rule. The three close under differentiation, so grad of grad works
//! through convolutions:
//!
//! - `y = conv(x, w)`: `∂/∂x = convᵀ(g, w)`, `∂/∂w = wgrad(x, g)`;
//! - `z = convᵀ(u, w)`: `∂/∂u = conv(g, w)`, `∂/∂w = wgrad(g, u)`;
//! - `v = wgrad(x, u)`: `∂/∂x = convᵀ(u, g)`, `∂/∂u = conv(x, g)`,
//!
//! all from `⟨conv(x, w), u⟩ = ⟨x, convᵀ(u, w)⟩ = ⟨w, wgrad(x, u)⟩`.

use super::{shape_error, Algebra, NumSlot, Op, Rule};
use crate::tape::Var;
use crate::tensor::conv::{self, Conv2dGeom, Dims};
use crate::tensor::{Element, Tensor};

/// The geometry and one spatial pair (the input size of a transposed
/// convolution, or the kernel size of a weight gradient), packed into the
/// tape's two numbers per op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Packed {
    pub(crate) geom: Conv2dGeom,
    pub(crate) pair: [usize; 2],
}

impl Packed {
    /// Stride, padding and dilation below 256, groups and the pair below
    /// 65536 (checked when the op is recorded).
    pub(crate) fn to_numbers(self) -> [f64; 2] {
        let g = self.geom;
        let a = g.stride[0] as u64
            | (g.stride[1] as u64) << 8
            | (g.padding[0] as u64) << 16
            | (g.padding[1] as u64) << 24
            | (g.dilation[0] as u64) << 32
            | (g.dilation[1] as u64) << 40
            | (g.groups as u64) << 48;
        let b = self.pair[0] as u64 | (self.pair[1] as u64) << 16;
        [f64::from_bits(a), f64::from_bits(b)]
    }

    pub(crate) fn from_numbers([a, b]: [f64; 2]) -> Self {
        let (a, b) = (a.to_bits(), b.to_bits());
        let byte = |s: u32| ((a >> s) & 0xff) as usize;
        Packed {
            geom: Conv2dGeom {
                stride: [byte(0), byte(8)],
                padding: [byte(16), byte(24)],
                dilation: [byte(32), byte(40)],
                groups: (a >> 48) as usize,
            },
            pair: [(b & 0xffff) as usize, ((b >> 16) & 0xffff) as usize],
        }
    }

    #[track_caller]
    fn checked(op: &str, geom: Conv2dGeom, pair: [usize; 2]) -> Self {
        let small = |v: &[usize]| v.iter().all(|&v| v < 256);
        assert!(
            small(&geom.stride) && small(&geom.padding) && small(&geom.dilation),
            "{op}: stride, padding and dilation must be below 256, got {geom:?}"
        );
        assert!(
            geom.stride.iter().chain(&geom.dilation).all(|&v| v > 0) && geom.groups > 0,
            "{op}: stride, dilation and groups must be positive, got {geom:?}"
        );
        assert!(
            geom.groups < 65536 && pair.iter().all(|&v| v < 65536),
            "{op}: groups and spatial sizes must be below 65536"
        );
        Packed { geom, pair }
    }
}

/// The sizes of a convolution of `x` `(n, c, h, w)` with `w`
/// `(o, c/groups, kh, kw)`, or a panic naming the op and the shapes.
#[track_caller]
fn dims<T: Element, X: Algebra<T>>(x: &X, w: &X, geom: &Conv2dGeom) -> Result<Dims, String> {
    let (xs, ws) = (x.shape(), w.shape());
    if xs.len() != 4 || ws.len() != 4 {
        return Err("expects a (batch, channels, height, width) input and an (out, in/groups, kh, kw) weight".into());
    }
    let g = geom.groups;
    let (n, c, o) = (xs[0], xs[1], ws[0]);
    if g == 0 || c % g != 0 || o % g != 0 || ws[1] * g != c {
        return Err(format!(
            "{c} input channels and {o} output channels with groups = {g} need a weight of shape ({o}, {}, kh, kw)",
            c / g.max(1)
        ));
    }
    let k = [ws[2], ws[3]];
    let out = match (geom.out_len(0, xs[2], k[0]), geom.out_len(1, xs[3], k[1])) {
        (Some(a), Some(b)) => [a, b],
        _ => {
            return Err(format!(
                "the {}×{} kernel (dilation {:?}) does not fit the padded {}×{} input",
                k[0], k[1], geom.dilation, xs[2], xs[3]
            ))
        }
    };
    Ok(Dims {
        n,
        c,
        o,
        hw: [xs[2], xs[3]],
        out,
        k,
    })
}

/// `c` cut to the spatial size of `like`: a convolution of the output of a
/// transposed convolution with `output_padding` has rows that no input
/// position maps to.
fn cut_to<T: Element, X: Algebra<T>>(c: X, like: &X) -> X {
    let (cs, ls) = (c.shape(), like.shape());
    if cs[2] == ls[2] && cs[3] == ls[3] {
        c
    } else {
        c.narrow(2, 0, ls[2]).narrow(3, 0, ls[3])
    }
}

/// `conv(x, w)`: inputs `x`, `w`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Conv2d(pub(crate) Packed);

impl Rule for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let (x, w) = (xs[0], xs[1]);
        let geom = self.0.geom;
        if k == 0 {
            let s = x.shape();
            g.conv2d_input_grad(w, geom, [s[2], s[3]])
        } else {
            let s = w.shape();
            x.conv2d_weight_grad(g, geom, [s[2], s[3]])
        }
    }
}

/// `convᵀ(u, w)` to an input of size `pair`: inputs `u`, `w`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Conv2dInputGrad(pub(crate) Packed);

impl Rule for Conv2dInputGrad {
    fn name(&self) -> &'static str {
        "conv_transpose2d"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let (u, w) = (xs[0], xs[1]);
        let geom = self.0.geom;
        if k == 0 {
            // The adjoint of scattering onto the output is reading it back
            // through the same windows: a convolution, cut to `u`'s size.
            cut_to(g.conv2d(w, geom), u)
        } else {
            let s = w.shape();
            g.conv2d_weight_grad(u, geom, [s[2], s[3]])
        }
    }
}

/// `wgrad(x, u)` for a kernel of size `pair`: inputs `x`, `u`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Conv2dWeightGrad(pub(crate) Packed);

impl Rule for Conv2dWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d_weight_grad"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let (x, u) = (xs[0], xs[1]);
        let geom = self.0.geom;
        if k == 0 {
            let s = x.shape();
            u.conv2d_input_grad(g, geom, [s[2], s[3]])
        } else {
            cut_to(x.conv2d(g, geom), u)
        }
    }
}

// ---- eager values ------------------------------------------------------------

/// The sizes of `convᵀ(u, w)` onto an input of size `hw`.
#[track_caller]
fn transposed_dims<T: Element, X: Algebra<T>>(
    u: &X,
    w: &X,
    geom: &Conv2dGeom,
    hw: [usize; 2],
) -> Result<Dims, String> {
    let (us, ws) = (u.shape(), w.shape());
    if us.len() != 4 || ws.len() != 4 {
        return Err("expects a (batch, channels, height, width) input and an (in, out/groups, kh, kw) weight".into());
    }
    let g = geom.groups;
    if g == 0 || us[1] != ws[0] || ws[0] % g != 0 {
        return Err(format!(
            "the input has {} channels, the weight's first axis {} (groups = {g})",
            us[1], ws[0]
        ));
    }
    let k = [ws[2], ws[3]];
    // Every input position must land in the output: a convolution of the
    // output has at least the input's size (more when output_padding adds
    // rows no window reaches back from).
    let fits = |a: usize| geom.out_len(a, hw[a], k[a]).is_some_and(|n| n >= us[2 + a]);
    if !(fits(0) && fits(1)) {
        return Err(format!(
            "a {}×{} output does not map back to a {}×{} input",
            hw[0], hw[1], us[2], us[3]
        ));
    }
    Ok(Dims {
        n: us[0],
        c: ws[1] * g,
        o: ws[0],
        hw,
        out: [us[2], us[3]],
        k,
    })
}

pub(crate) fn eager_conv2d<T: Element>(
    x: &Tensor<T>,
    w: &Tensor<T>,
    geom: Conv2dGeom,
) -> Tensor<T> {
    let d = dims(x, w, &geom).unwrap_or_else(|m| panic!("conv2d: {m}"));
    conv::forward(x, w, &d, &geom)
}

pub(crate) fn eager_input_grad<T: Element>(
    u: &Tensor<T>,
    w: &Tensor<T>,
    geom: Conv2dGeom,
    hw: [usize; 2],
) -> Tensor<T> {
    let d = transposed_dims(u, w, &geom, hw).unwrap_or_else(|m| panic!("conv_transpose2d: {m}"));
    conv::input_grad(u, w, &d, &geom)
}

pub(crate) fn eager_weight_grad<T: Element>(
    x: &Tensor<T>,
    u: &Tensor<T>,
    geom: Conv2dGeom,
    k: [usize; 2],
) -> Tensor<T> {
    let (xs, us) = (x.shape(), u.shape());
    assert!(
        xs.len() == 4 && us.len() == 4,
        "conv2d_weight_grad: 4-d operands expected"
    );
    let d = Dims {
        n: xs[0],
        c: xs[1],
        o: us[1],
        hw: [xs[2], xs[3]],
        out: [us[2], us[3]],
        k,
    };
    conv::weight_grad(x, u, &d, &geom)
}

// ---- recorded values -----------------------------------------------------------

/// Records one of the three ops on the tape of `a`.
#[track_caller]
fn record<'t, T: Element>(
    op: fn(NumSlot) -> Op,
    packed: Packed,
    a: Var<'t, T>,
    b: Var<'t, T>,
    value: Tensor<T>,
) -> Var<'t, T> {
    let slot = a.tape().push_numbers(packed.to_numbers());
    a.tape().record(op(slot), &[a, b], value)
}

pub(crate) fn record_input_grad<'t, T: Element>(
    u: Var<'t, T>,
    w: Var<'t, T>,
    geom: Conv2dGeom,
    hw: [usize; 2],
) -> Var<'t, T> {
    let value = eager_input_grad(&u.value(), &w.value(), geom, hw);
    record(
        Op::Conv2dInputGrad,
        Packed::checked("conv_transpose2d", geom, hw),
        u,
        w,
        value,
    )
}

pub(crate) fn record_weight_grad<'t, T: Element>(
    x: Var<'t, T>,
    u: Var<'t, T>,
    geom: Conv2dGeom,
    k: [usize; 2],
) -> Var<'t, T> {
    let value = eager_weight_grad(&x.value(), &u.value(), geom, k);
    record(
        Op::Conv2dWeightGrad,
        Packed::checked("conv2d_weight_grad", geom, k),
        x,
        u,
        value,
    )
}

impl<'t, T: Element> Var<'t, T> {
    /// 2-d convolution of a `(batch, channels, height, width)` input with an
    /// `(out, channels/groups, kh, kw)` weight, as PyTorch's
    /// `F.conv2d(x, w, stride=…, padding=…, dilation=…, groups=…)` (no bias:
    /// add one of shape `(1, out, 1, 1)`).
    ///
    /// ```
    /// use tapegrad::{tensor::Conv2dGeom, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones([1, 1, 4, 4]));
    /// let w = tape.var(Tensor::ones([2, 1, 3, 3]));
    /// let y = x.conv2d(w, Conv2dGeom { padding: [1, 1], ..Default::default() });
    /// assert_eq!(y.shape().as_slice(), &[1, 2, 4, 4]);
    /// assert_eq!(y.value().get(&[0, 0, 0, 0]), 4.0); // a corner sees 2×2 ones
    /// let g = y.sum().backward();
    /// assert_eq!(g[w].get(&[0, 0, 1, 1]), 16.0); // the centre tap sees every pixel
    /// ```
    ///
    /// # Panics
    /// If the shapes do not fit (the message names them), or a geometry
    /// number is out of range.
    #[track_caller]
    pub fn conv2d(self, w: Var<'t, T>, geom: Conv2dGeom) -> Var<'t, T> {
        self.same_tape(&w, "conv2d");
        let packed = Packed::checked("conv2d", geom, [0, 0]);
        // A match, not a closure: the panic must point at the caller.
        let d = match dims(&self, &w, &geom) {
            Ok(d) => d,
            Err(m) => shape_error("conv2d", &[self, w], &m),
        };
        let value = conv::forward(&self.value(), &w.value(), &d, &geom);
        record(Op::Conv2d, packed, self, w, value)
    }

    /// Transposed 2-d convolution (the adjoint of [`Var::conv2d`] in its
    /// input), as PyTorch's `F.conv_transpose2d`: the weight is
    /// `(in, out/groups, kh, kw)`, and the output's size is
    /// `(h - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1`.
    ///
    /// ```
    /// use tapegrad::{tensor::Conv2dGeom, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::ones([1, 2, 3, 3]));
    /// let w = tape.var(Tensor::ones([2, 1, 2, 2]));
    /// let geom = Conv2dGeom { stride: [2, 2], ..Default::default() };
    /// let y = x.conv_transpose2d(w, geom, [0, 0]);
    /// assert_eq!(y.shape().as_slice(), &[1, 1, 6, 6]);
    /// assert_eq!(y.value().get(&[0, 0, 5, 5]), 2.0);
    /// ```
    ///
    /// # Panics
    /// If the shapes do not fit, or `output_padding` is not below the
    /// stride or the dilation.
    #[track_caller]
    pub fn conv_transpose2d(
        self,
        w: Var<'t, T>,
        geom: Conv2dGeom,
        output_padding: [usize; 2],
    ) -> Var<'t, T> {
        self.same_tape(&w, "conv_transpose2d");
        let (xs, ws) = (self.shape(), w.shape());
        if xs.len() != 4 || ws.len() != 4 {
            shape_error(
                "conv_transpose2d",
                &[self, w],
                "expects a 4-d input and a 4-d weight",
            );
        }
        let mut hw = [0; 2];
        for a in 0..2 {
            assert!(
                output_padding[a] < geom.stride[a].max(geom.dilation[a]),
                "conv_transpose2d: output_padding {output_padding:?} must be below the stride or the dilation"
            );
            let grown = (xs[2 + a] - 1) * geom.stride[a]
                + geom.dilation[a] * (ws[2 + a] - 1)
                + output_padding[a]
                + 1;
            if grown < 2 * geom.padding[a] + 1 {
                shape_error(
                    "conv_transpose2d",
                    &[self, w],
                    "the padding leaves no output",
                );
            }
            hw[a] = grown - 2 * geom.padding[a];
        }
        if let Err(m) = transposed_dims(&self, &w, &geom, hw) {
            shape_error("conv_transpose2d", &[self, w], &m);
        }
        record_input_grad(self, w, geom, hw)
    }
}
