//! Softmax and log-softmax along an axis, fused and shifted by the lane
//! maximum so that logits of ±1000 stay finite.

use super::{check_axis, Algebra, Axis, AxisIndex, Op, Rule};
use crate::tape::Var;
use crate::tensor::{
    kernels::{log_softmax_lane, softmax_lane},
    Element,
};

/// `e^x / Σ e^x` along an axis; the vjp is `y ⊙ (g - Σ g ⊙ y)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Softmax {
    axis: Axis,
}
impl Rule for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, _xs: &[&X], y: &X, g: &X, _k: usize) -> X {
        y.mul(&g.sub(&g.mul(y).sum_axis(self.axis.get(), true)))
    }
}

/// `x - logsumexp(x)` along an axis; the vjp is `g - e^y Σ g`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LogSoftmax {
    axis: Axis,
}
impl Rule for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, _xs: &[&X], y: &X, g: &X, _k: usize) -> X {
        g.sub(&y.exp().mul(&g.sum_axis(self.axis.get(), true)))
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Softmax along `axis`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1000.0, 0.0, -1000.0], [3]));
    /// let p = x.softmax(0).value();
    /// assert_eq!(p.data(), &[1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn softmax(self, axis: impl AxisIndex) -> Var<'t, T> {
        let axis = check_axis("softmax", self, axis);
        let v = self.peek(|v| v.map_lanes(axis, softmax_lane));
        self.tape().record(
            Op::Softmax(Softmax {
                axis: Axis::new(axis),
            }),
            &[self],
            v,
        )
    }

    /// Log-softmax along `axis` (finite where `softmax(..).ln()` is not).
    #[track_caller]
    pub fn log_softmax(self, axis: impl AxisIndex) -> Var<'t, T> {
        let axis = check_axis("log_softmax", self, axis);
        let v = self.peek(|v| v.map_lanes(axis, log_softmax_lane));
        self.tape().record(
            Op::LogSoftmax(LogSoftmax {
                axis: Axis::new(axis),
            }),
            &[self],
            v,
        )
    }
}
