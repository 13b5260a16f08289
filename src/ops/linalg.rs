//! Matrix products: 2-d, batched 3-d, and a 3-d batch times one 2-d matrix.

use super::{shape_error, Algebra, Op, Rule};
use crate::tape::Var;
use crate::tensor::Element;

/// `A · B`; ∂/∂A = G · Bᵀ, ∂/∂B = Aᵀ · G (summed over a broadcast batch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Matmul;
impl Rule for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn vjp<T: Element, X: Algebra<T>>(&self, xs: &[&X], _y: &X, g: &X, k: usize) -> X {
        let (a, b) = (xs[0], xs[1]);
        if k == 0 {
            g.matmul(&b.transpose_last2()).sum_to(&a.shape())
        } else {
            a.transpose_last2().matmul(g).sum_to(&b.shape())
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
        self.same_tape(&other, "matmul");
        let (sa, sb) = (self.shape(), other.shape());
        let ranks_ok = (2..=3).contains(&sa.len()) && (2..=3).contains(&sb.len());
        if !ranks_ok {
            shape_error("matmul", &[self, other], "inputs must be 2-d or 3-d");
        }
        if sa[sa.len() - 1] != sb[sb.len() - 2] {
            shape_error("matmul", &[self, other], "inner dimensions differ");
        }
        if sa.len() == 3 && sb.len() == 3 && sa[0] != sb[0] {
            shape_error("matmul", &[self, other], "batch sizes differ");
        }
        let v = {
            let nodes = self.tape().nodes.borrow();
            nodes[self.index()]
                .value
                .matmul(&nodes[other.index()].value)
        };
        self.tape().record(Op::Matmul(Matmul), &[self, other], v)
    }
}
