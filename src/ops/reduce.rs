//! Reductions: sum and mean (of everything or along an axis), max along an
//! axis (gradient to the first maximum), logsumexp along an axis (stable).

use super::{check_axis, keepdim_shape, Algebra, Axis, AxisIndex, Op, Rule};
use crate::tape::Var;
use crate::tensor::{kernels::logsumexp_lane, Element};

/// Gives a reduced gradient back its reduced axis (length 1), so that it
/// broadcasts against the input.
fn unreduce<T: Element, X: Algebra<T>>(
    g: &X,
    x_shape: &[usize],
    axis: Option<usize>,
    keepdim: bool,
) -> X {
    match axis {
        Some(a) if !keepdim => g.reshape(&keepdim_shape(x_shape, a)),
        _ => g.clone(),
    }
}

/// Sum of all elements (`axis: None`, a 0-d result) or along one axis;
/// every input element gets the output's gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sum {
    pub(crate) axis: Option<Axis>,
    pub(crate) keepdim: bool,
}
impl Rule for Sum {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let shape = xs[0].shape();
        let axis = self.axis.map(Axis::get);
        unreduce(g, &shape, axis, self.keepdim).broadcast_to(&shape)
    }
}

/// Mean of all elements or along one axis; every input element gets the
/// output's gradient divided by the count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Mean {
    pub(crate) axis: Option<Axis>,
    pub(crate) keepdim: bool,
}
impl Rule for Mean {
    fn name(&self) -> &'static str {
        "mean"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let shape = xs[0].shape();
        let axis = self.axis.map(Axis::get);
        let n = match axis {
            Some(a) => shape[a],
            None => shape.iter().product(),
        };
        unreduce(g, &shape, axis, self.keepdim)
            .broadcast_to(&shape)
            .scale(T::one() / T::from_usize(n).unwrap())
    }
}

/// Maximum along an axis; the gradient goes to the first maximum of each
/// lane.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Max {
    pub(crate) axis: Axis,
    pub(crate) keepdim: bool,
}
impl Rule for Max {
    fn name(&self) -> &'static str {
        "max"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let shape = xs[0].shape();
        let axis = self.axis.get();
        unreduce(g, &shape, Some(axis), self.keepdim).mul(&xs[0].first_max_mask(axis))
    }
}

/// `ln Σ e^x` along an axis, shifted by the maximum; d/dx = softmax(x).
/// (Computed as the softmax rather than `e^(x - y)`: for large `x` the
/// difference `x - y` loses digits that the shifted softmax keeps.)
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct LogSumExp {
    pub(crate) axis: Axis,
    pub(crate) keepdim: bool,
}
impl Rule for LogSumExp {
    fn name(&self) -> &'static str {
        "logsumexp"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        let shape = xs[0].shape();
        let axis = self.axis.get();
        let gk = unreduce(g, &shape, Some(axis), self.keepdim);
        xs[0].softmax(axis).mul(&gk)
    }
}

/// Maximum of a lane; NaN propagates, as in NumPy.
fn max_lane<T: Element>(lane: &[T]) -> T {
    let mut m = T::neg_infinity();
    for &v in lane {
        if v.is_nan() {
            return v;
        }
        if v > m {
            m = v;
        }
    }
    m
}

impl<'t, T: Element> Var<'t, T> {
    /// Sum of all elements, as a scalar.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    /// assert_eq!(x.sum().item(), 6.0);
    /// ```
    #[track_caller]
    pub fn sum(self) -> Var<'t, T> {
        let v = self.peek(|v| v.sum_all());
        self.tape().record(
            Op::Sum(Sum {
                axis: None,
                keepdim: false,
            }),
            &[self],
            v,
        )
    }

    /// Sum along `axis`, dropping it unless `keepdim`.
    #[track_caller]
    pub fn sum_axis(self, axis: impl AxisIndex, keepdim: bool) -> Var<'t, T> {
        let axis = check_axis("sum_axis", self, axis);
        let v = self.peek(|v| v.sum_axis(axis, keepdim));
        self.tape().record(
            Op::Sum(Sum {
                axis: Some(Axis::new(axis)),
                keepdim,
            }),
            &[self],
            v,
        )
    }

    /// Mean of all elements, as a scalar.
    #[track_caller]
    pub fn mean(self) -> Var<'t, T> {
        let v = self.peek(|v| {
            let n = T::from_usize(v.numel()).unwrap();
            crate::Tensor::scalar(v.sum_all().item() / n)
        });
        self.tape().record(
            Op::Mean(Mean {
                axis: None,
                keepdim: false,
            }),
            &[self],
            v,
        )
    }

    /// Mean along `axis`, dropping it unless `keepdim`.
    #[track_caller]
    pub fn mean_axis(self, axis: impl AxisIndex, keepdim: bool) -> Var<'t, T> {
        let axis = check_axis("mean_axis", self, axis);
        let v = self.peek(|v| {
            let n = T::from_usize(v.shape()[axis]).unwrap();
            v.sum_axis(axis, keepdim).map(|s| s / n)
        });
        self.tape().record(
            Op::Mean(Mean {
                axis: Some(Axis::new(axis)),
                keepdim,
            }),
            &[self],
            v,
        )
    }

    /// Maximum along `axis`; the gradient goes to the first maximum.
    #[track_caller]
    pub fn max_axis(self, axis: impl AxisIndex, keepdim: bool) -> Var<'t, T> {
        let axis = check_axis("max_axis", self, axis);
        let v = self.peek(|v| v.reduce_lanes(axis, keepdim, max_lane));
        self.tape().record(
            Op::Max(Max {
                axis: Axis::new(axis),
                keepdim,
            }),
            &[self],
            v,
        )
    }

    /// `ln Σ exp(x)` along `axis`, computed with the maximum shifted out so
    /// it stays finite for large inputs.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1000.0, 1000.0], [2]));
    /// let l = x.logsumexp(0, false);
    /// assert!((l.item() - (1000.0 + 2f64.ln())).abs() < 1e-12);
    /// assert_eq!(l.backward()[x].data(), &[0.5, 0.5]);
    /// ```
    #[track_caller]
    pub fn logsumexp(self, axis: impl AxisIndex, keepdim: bool) -> Var<'t, T> {
        let axis = check_axis("logsumexp", self, axis);
        let v = self.peek(|v| v.reduce_lanes(axis, keepdim, logsumexp_lane));
        self.tape().record(
            Op::LogSumExp(LogSumExp {
                axis: Axis::new(axis),
                keepdim,
            }),
            &[self],
            v,
        )
    }
}
