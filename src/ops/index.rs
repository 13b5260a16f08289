//! Picking entries by index: index_select (whole slices along an axis) and
//! gather (one entry per position, e.g. each sample's class logit), with
//! their adjoints index_add and scatter_add. Indices ride on the tape as a
//! constant input holding exact integers.

use super::{check_axis, index_tensor, shape_error, Algebra, Axis, AxisIndex, Op, Rule};
use crate::tape::Var;
use crate::tensor::{Element, Shape};

/// Slices `idx` along `axis`; the gradient is added back at those slices.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IndexSelect {
    axis: Axis,
}
impl Rule for IndexSelect {
    fn name(&self) -> &'static str {
        "index_select"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.index_add(self.axis.get(), xs[1], xs[0].shape()[self.axis.get()])
    }
}

/// Adds slices into zeros at `idx` along `axis`; the gradient is the
/// matching index_select.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct IndexAdd {
    axis: Axis,
}
impl Rule for IndexAdd {
    fn name(&self) -> &'static str {
        "index_add"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.index_select(self.axis.get(), xs[1])
    }
}

/// One entry per index position along `axis`; the gradient is scattered back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Gather {
    axis: Axis,
}
impl Rule for Gather {
    fn name(&self) -> &'static str {
        "gather"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.scatter_add(self.axis.get(), xs[1], xs[0].shape()[self.axis.get()])
    }
}

/// Adds entries into zeros at `idx` along `axis`; the gradient is the
/// matching gather.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ScatterAdd {
    axis: Axis,
}
impl Rule for ScatterAdd {
    fn name(&self) -> &'static str {
        "scatter_add"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, _k: usize) -> X {
        g.gather(self.axis.get(), xs[1])
    }
}

#[track_caller]
pub(crate) fn record_index_select<'t, T: Element>(
    x: Var<'t, T>,
    axis: usize,
    idx: Var<'t, T>,
) -> Var<'t, T> {
    let v = x.peek(|xv| idx.peek(|iv| xv.index_select(axis, iv)));
    x.tape().record(
        Op::IndexSelect(IndexSelect {
            axis: Axis::new(axis),
        }),
        &[x, idx],
        v,
    )
}

#[track_caller]
pub(crate) fn record_index_add<'t, T: Element>(
    src: Var<'t, T>,
    axis: usize,
    idx: Var<'t, T>,
    n: usize,
) -> Var<'t, T> {
    let v = src.peek(|sv| idx.peek(|iv| sv.index_add(axis, iv, n)));
    src.tape().record(
        Op::IndexAdd(IndexAdd {
            axis: Axis::new(axis),
        }),
        &[src, idx],
        v,
    )
}

#[track_caller]
pub(crate) fn record_gather<'t, T: Element>(
    x: Var<'t, T>,
    axis: usize,
    idx: Var<'t, T>,
) -> Var<'t, T> {
    let v = x.peek(|xv| idx.peek(|iv| xv.gather(axis, iv)));
    x.tape().record(
        Op::Gather(Gather {
            axis: Axis::new(axis),
        }),
        &[x, idx],
        v,
    )
}

#[track_caller]
pub(crate) fn record_scatter_add<'t, T: Element>(
    src: Var<'t, T>,
    axis: usize,
    idx: Var<'t, T>,
    n: usize,
) -> Var<'t, T> {
    let v = src.peek(|sv| idx.peek(|iv| sv.scatter_add(axis, iv, n)));
    src.tape().record(
        Op::ScatterAdd(ScatterAdd {
            axis: Axis::new(axis),
        }),
        &[src, idx],
        v,
    )
}

impl<'t, T: Element> Var<'t, T> {
    /// The slices at `indices` along `axis` (indices may repeat).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    /// let rows = x.index_select(0, &[1, 1, 0]);
    /// assert_eq!(rows.value().data(), &[3.0, 4.0, 3.0, 4.0, 1.0, 2.0]);
    /// assert_eq!(rows.sum().backward()[x].data(), &[1.0, 1.0, 2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn index_select(self, axis: impl AxisIndex, indices: &[usize]) -> Var<'t, T> {
        let axis = check_axis("index_select", self, axis);
        let idx = index_tensor("index_select", self, axis, indices, &[indices.len()]);
        record_index_select(self, axis, self.constant_like(idx))
    }

    /// Along `axis`, the entry named by each index, as in `torch.gather`:
    /// the indices form a tensor shaped like `self` except along `axis`,
    /// where it has `indices.len() / (other dimensions)` entries.
    ///
    /// Picking each sample's class logit from a `(batch, classes)` tensor:
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let logits = tape.var(Tensor::from_vec(vec![0.1, 0.9, 0.7, 0.3], [2, 2]));
    /// let picked = logits.gather(1, &[1, 0]);
    /// assert_eq!(picked.shape().as_slice(), &[2, 1]);
    /// assert_eq!(picked.value().data(), &[0.9, 0.7]);
    /// ```
    #[track_caller]
    pub fn gather(self, axis: impl AxisIndex, indices: &[usize]) -> Var<'t, T> {
        let axis = check_axis("gather", self, axis);
        let shape = self.shape();
        let others: usize = shape
            .iter()
            .enumerate()
            .filter(|&(d, _)| d != axis)
            .map(|(_, n)| n)
            .product();
        if others == 0 || !indices.len().is_multiple_of(others) {
            shape_error(
                "gather",
                &[self],
                &format!(
                    "{} indices cannot be arranged along axis {axis}",
                    indices.len()
                ),
            );
        }
        let mut idx_shape: Shape = shape.clone();
        idx_shape[axis] = indices.len() / others;
        let idx = index_tensor("gather", self, axis, indices, &idx_shape);
        record_gather(self, axis, self.constant_like(idx))
    }
}
