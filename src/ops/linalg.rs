//! Matrix products: 2-d, batched 3-d, and a 3-d batch times one 2-d matrix,
//! with either operand optionally transposed (read through strides, not
//! copied).

use super::{shape_error, Algebra, Op, Rule};
use crate::tape::Var;
use crate::tensor::Element;

/// `op(A) · op(B)`, where `op` transposes when the flag is set. For plain
/// `A·B`: ∂/∂A = G·Bᵀ, ∂/∂B = Aᵀ·G; the transposed forms follow by the
/// same algebra and are again products with transpose flags, so the
/// backward pass never copies a transpose either. Gradients of an operand
/// shared across a batch are summed over the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Matmul {
    pub(crate) ta: bool,
    pub(crate) tb: bool,
}
impl Rule for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let (a, b) = (xs[0], xs[1]);
        let (ta, tb) = (self.ta, self.tb);
        if k == 0 {
            let da = if ta {
                b.matmul_t(g, tb, true)
            } else {
                g.matmul_t(b, false, !tb)
            };
            da.sum_to(&a.shape())
        } else {
            let db = if tb {
                g.matmul_t(a, true, ta)
            } else {
                a.matmul_t(g, !ta, false)
            };
            db.sum_to(&b.shape())
        }
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Matrix product: `(m,k)·(k,n)`, batched `(b,m,k)·(b,k,n)`, or with
    /// one side a single matrix shared by the batch.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let a = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 1.0], [2, 1]));
    /// let y = a.matmul(x);
    /// assert_eq!(y.value().data(), &[3.0, 7.0]);
    /// assert_eq!(y.sum().backward()[a].data(), &[1.0, 1.0, 1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn matmul(self, other: Var<'t, T>) -> Var<'t, T> {
        self.matmul_t(other, false, false)
    }

    /// `op(self) · op(other)`, transposing the last two dimensions of an
    /// operand whose flag is set, without copying it: `x.matmul_t(w,
    /// false, true)` is `x · wᵀ`, the product of a linear layer that keeps
    /// its weight as `(out, in)`.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0], [1, 2]));
    /// let w = tape.var(Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0], [3, 2]));
    /// assert_eq!(x.matmul_t(w, false, true).value().data(), &[1.0, 2.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn matmul_t(
        self,
        other: Var<'t, T>,
        transpose_self: bool,
        transpose_other: bool,
    ) -> Var<'t, T> {
        self.same_tape(&other, "matmul");
        let (sa, sb) = (self.shape(), other.shape());
        let ranks_ok = (2..=3).contains(&sa.len()) && (2..=3).contains(&sb.len());
        if !ranks_ok {
            shape_error("matmul", &[self, other], "inputs must be 2-d or 3-d");
        }
        let inner_a = if transpose_self {
            sa[sa.len() - 2]
        } else {
            sa[sa.len() - 1]
        };
        let inner_b = if transpose_other {
            sb[sb.len() - 1]
        } else {
            sb[sb.len() - 2]
        };
        if inner_a != inner_b {
            shape_error("matmul", &[self, other], "inner dimensions differ");
        }
        if sa.len() == 3 && sb.len() == 3 && sa[0] != sb[0] {
            shape_error("matmul", &[self, other], "batch sizes differ");
        }
        let v = {
            let arena = self.tape().arena.borrow();
            arena.value(self.index()).matmul_t(
                &arena.value(other.index()),
                transpose_self,
                transpose_other,
            )
        };
        let op = Matmul {
            ta: transpose_self,
            tb: transpose_other,
        };
        self.tape().record(Op::Matmul(op), &[self, other], v)
    }
}
