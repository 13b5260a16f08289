//! Pooling and flattening, built from ops that already carry their rules
//! (so gradients, grad of grad and batched Jacobians come with them):
//!
//! - `max_pool2d` picks each window's maximum with `gather`, at indices
//!   found from the forward values; the gradient goes to that element only
//!   (for a tie, the first in row-major order within the window, as
//!   PyTorch's CPU kernel);
//! - `avg_pool2d` is a depthwise convolution with a constant kernel of
//!   `1/(kh·kw)` (zero padding counted, PyTorch's `count_include_pad`);
//! - `adaptive_avg_pool2d` is a mean over the window PyTorch assigns each
//!   output cell (a plain mean for 1×1, an `avg_pool2d` when the size
//!   divides);
//! - `flatten` is a reshape.

use super::index::record_gather;
use super::shape_error;
use crate::tape::Var;
use crate::tensor::{Buffer, Conv2dGeom, Element, Shape, Tensor};

/// The window geometry of a pooling op: kernel, stride and padding per
/// spatial axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Window size, (rows, columns).
    pub kernel: [usize; 2],
    /// Step between windows (PyTorch's default: the kernel size).
    pub stride: [usize; 2],
    /// Padding on each side, at most half the kernel.
    pub padding: [usize; 2],
}

impl Pool2d {
    /// A `k × k` window moving by `k`, no padding (PyTorch's default
    /// `MaxPool2d(k)`).
    pub fn square(k: usize) -> Self {
        Pool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }

    fn geom(&self, groups: usize) -> Conv2dGeom {
        Conv2dGeom {
            stride: self.stride,
            padding: self.padding,
            dilation: [1, 1],
            groups,
        }
    }
}

/// The flat index within its `h × w` plane of each window's maximum, for
/// every plane of `x` in turn (the first maximum in row-major order; NaN
/// wins, as in PyTorch, so that it cannot vanish).
fn window_maxima<T: Element>(
    x: &[T],
    [h, w]: [usize; 2],
    [oh, ow]: [usize; 2],
    p: &Pool2d,
) -> Tensor<T> {
    // The in-bounds input positions of window `o` along one axis.
    let taps = |a: usize, o: usize, n: usize| {
        let first = (o * p.stride[a]) as isize - p.padding[a] as isize;
        (first.max(0) as usize)..((first + p.kernel[a] as isize).min(n as isize) as usize)
    };
    let planes = x.len() / (h * w);
    // Written straight into a pooled index tensor (as floats, as gather
    // takes them; `max_pool2d` checked that they are exact).
    let idx = Buffer::build(planes * oh * ow, |idx| {
        for plane in x.chunks_exact(h * w) {
            for oy in 0..oh {
                for ox in 0..ow {
                    // Padding is at most half the kernel, so every window
                    // holds an input position: start from its first.
                    let (ys, xs) = (taps(0, oy, h), taps(1, ox, w));
                    let mut at = ys.start * w + xs.start;
                    let mut best = plane[at];
                    for iy in ys {
                        for ix in xs.clone() {
                            let v = plane[iy * w + ix];
                            if v > best || (v.is_nan() && !best.is_nan()) {
                                (at, best) = (iy * w + ix, v);
                            }
                        }
                    }
                    idx.push(T::from_usize(at).expect("a plane position fits the float type"));
                }
            }
        }
    });
    Tensor::from_parts(Shape::from_slice(&[planes, oh * ow]), idx)
}

impl<'t, T: Element> Var<'t, T> {
    /// `(n, c, h, w) → (n, c, oh, ow)` with the sizes of a convolution's
    /// output, or a panic naming the op.
    #[track_caller]
    fn pooled_size(self, op: &str, p: &Pool2d) -> [usize; 4] {
        let s = self.shape();
        if s.len() != 4 {
            shape_error(
                op,
                &[self],
                "expects a (batch, channels, height, width) input",
            );
        }
        let ok =
            (0..2).all(|a| p.kernel[a] > 0 && p.stride[a] > 0 && 2 * p.padding[a] <= p.kernel[a]);
        if !ok {
            shape_error(op, &[self], &format!("needs positive kernel and stride and padding at most half the kernel, got {p:?}"));
        }
        let g = p.geom(1);
        match (
            g.out_len(0, s[2], p.kernel[0]),
            g.out_len(1, s[3], p.kernel[1]),
        ) {
            (Some(oh), Some(ow)) => [s[0], s[1], oh, ow],
            _ => shape_error(
                op,
                &[self],
                &format!("the {:?} window does not fit", p.kernel),
            ),
        }
    }

    /// Max pooling, as PyTorch's `F.max_pool2d(x, kernel, stride, padding)`.
    /// The gradient of each window goes to its maximum (the first one,
    /// row-major, when several tie).
    ///
    /// ```
    /// use tapegrad::{ops::Pool2d, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec((0..16).map(f64::from).collect(), [1, 1, 4, 4]));
    /// let y = x.max_pool2d(Pool2d::square(2));
    /// assert_eq!(y.value().data(), &[5.0, 7.0, 13.0, 15.0]);
    /// let g = y.sum().backward();
    /// assert_eq!(g[x].get(&[0, 0, 1, 1]), 1.0);
    /// assert_eq!(g[x].get(&[0, 0, 0, 0]), 0.0);
    /// ```
    #[track_caller]
    pub fn max_pool2d(self, p: Pool2d) -> Var<'t, T> {
        let [n, c, oh, ow] = self.pooled_size("max_pool2d", &p);
        let s = self.shape();
        let (h, w) = (s[2], s[3]);
        assert!(
            T::from_usize(h * w).is_some_and(|v| v <= T::lit(2.0) / T::epsilon()),
            "max_pool2d: a {h}×{w} plane has too many positions to index exactly in this float type"
        );
        let idx = self.peek(|x| window_maxima(x.data(), [h, w], [oh, ow], &p));
        let idx = self.constant_like(idx);
        record_gather(self.reshape([n * c, h * w]), 1, idx).reshape([n, c, oh, ow])
    }

    /// Average pooling, as PyTorch's `F.avg_pool2d(x, kernel, stride,
    /// padding)` with `count_include_pad=True` (its default): padded zeros
    /// count in the mean.
    ///
    /// ```
    /// use tapegrad::{ops::Pool2d, Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec((0..16).map(f64::from).collect(), [1, 1, 4, 4]));
    /// let y = x.avg_pool2d(Pool2d::square(2));
    /// assert_eq!(y.value().data(), &[2.5, 4.5, 10.5, 12.5]);
    /// ```
    #[track_caller]
    pub fn avg_pool2d(self, p: Pool2d) -> Var<'t, T> {
        let [_, c, _, _] = self.pooled_size("avg_pool2d", &p);
        let area = (p.kernel[0] * p.kernel[1]) as f64;
        let kernel = Tensor::full([c, 1, p.kernel[0], p.kernel[1]], T::lit(1.0 / area));
        self.conv2d(self.constant_like(kernel), p.geom(c))
    }

    /// Adaptive average pooling to `(oh, ow)`, as PyTorch's
    /// `F.adaptive_avg_pool2d`. `[1, 1]` is the global average pool.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec((0..8).map(f64::from).collect(), [1, 2, 2, 2]));
    /// assert_eq!(x.adaptive_avg_pool2d([1, 1]).value().data(), &[1.5, 5.5]);
    /// ```
    ///
    /// # Panics
    /// If the input is not 4-d, or an output size other than 1 does not
    /// divide the input size (windows of unequal size are not supported).
    #[track_caller]
    pub fn adaptive_avg_pool2d(self, out: [usize; 2]) -> Var<'t, T> {
        let s = self.shape();
        if s.len() != 4 {
            shape_error(
                "adaptive_avg_pool2d",
                &[self],
                "expects a (batch, channels, height, width) input",
            );
        }
        if out == [1, 1] {
            return self.mean_axis(3, true).mean_axis(2, true);
        }
        let divides = (0..2).all(|a| out[a] > 0 && s[2 + a].is_multiple_of(out[a]));
        if !divides {
            shape_error(
                "adaptive_avg_pool2d",
                &[self],
                &format!("output {out:?} must divide the input's height and width (or be [1, 1])"),
            );
        }
        let k = [s[2] / out[0], s[3] / out[1]];
        self.avg_pool2d(Pool2d {
            kernel: k,
            stride: k,
            padding: [0, 0],
        })
    }

    /// Flattens axes `start..` into one, as PyTorch's `torch.flatten(x,
    /// start_dim)` (`start` 1 keeps the batch axis).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f32>::new();
    /// let x = tape.constant(Tensor::zeros([8, 16, 4, 4]));
    /// assert_eq!(x.flatten(1).shape().as_slice(), &[8, 256]);
    /// ```
    #[track_caller]
    pub fn flatten(self, start: usize) -> Var<'t, T> {
        let s = self.shape();
        if start >= s.len().max(1) {
            shape_error(
                "flatten",
                &[self],
                &format!("start axis {start} is not an axis"),
            );
        }
        let mut shape: Shape = s[..start].iter().copied().collect();
        shape.push(s[start..].iter().product());
        self.reshape(shape)
    }
}
