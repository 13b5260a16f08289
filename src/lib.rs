//! # tapegrad
//!
//! Reverse-mode automatic differentiation on a tape. Operations on
//! [`Var`]s are recorded on a [`Tape`], each with its local derivative rule;
//! [`Var::backward`] walks the tape in reverse and accumulates global
//! derivatives by the chain rule.
//!
//! ## Quick start: the chain rule on scalars
//!
//! ```
//! use tapegrad::prelude::*;
//!
//! let tape = Tape::<f64>::new();
//! let (x, w, b) = (tape.var(1.0), tape.var(0.5), tape.var(-0.2));
//! let y = (w * x + b).tanh();
//! let grads = y.backward();
//! // dy/dw = (1 - y²) · x
//! assert!((grads[w].item() - (1.0 - y.item().powi(2)) * 1.0).abs() < 1e-15);
//! assert!((grads[w].item() - 0.9151369618266293).abs() < 1e-12);
//! ```
//!
//! ## Tensors
//!
//! ```
//! use tapegrad::prelude::*;
//!
//! let tape = Tape::<f32>::new();
//! let x = tape.constant(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
//! let w = tape.var(Tensor::rand_uniform([3, 2], -0.5, 0.5, 42));
//! let b = tape.var(Tensor::zeros([2]));
//! let logits = x.matmul(w) + b;                  // (2,3)·(3,2) + (2,) broadcasts
//! let loss = (-logits.log_softmax(1).gather(1, &[0, 1])).mean();
//! let grads = loss.backward();
//! assert_eq!(grads[w].shape(), &[3, 2]);
//! assert_eq!(grads[b].shape(), &[2]);
//! ```
//!
//! ## Grad of grad
//!
//! ```
//! use tapegrad::prelude::*;
//!
//! let tape = Tape::<f64>::new();
//! let x = tape.var(0.7);
//! let y = x.sin() * x;
//! let dy = y.backward_recorded()[x];   // a Var: 0.7·cos 0.7 + sin 0.7
//! let d2y = dy.backward()[x].item();   // 2 cos x - x sin x
//! assert!((d2y - (2.0 * 0.7f64.cos() - 0.7 * 0.7f64.sin())).abs() < 1e-14);
//! ```
//!
//! See `docs/architecture.md` for how the tape, the rules and grad of grad
//! fit together.

#![warn(missing_docs)]

#[cfg(feature = "data")]
pub mod data;
mod files;
pub mod grad;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod tape;
pub mod tensor;
pub mod trace;

pub use ops::{Algebra, CustomOp, Pointwise};
pub use tape::{GradVars, Gradients, Tape, Var, VarRange};
pub use tensor::{flush_subnormals, AxisIndex, Element, Shape, Tensor};

/// The names most programs need.
pub mod prelude {
    pub use crate::{Element, GradVars, Gradients, Tape, Tensor, Var, VarRange};
}

/// The tutorial's code blocks, compiled and run as doctests.
#[doc = include_str!("../docs/tutorial.md")]
#[cfg(doctest)]
pub struct TutorialDoctests;

/// The training guide's code blocks, compiled and run as doctests.
#[doc = include_str!("../docs/training.md")]
#[cfg(doctest)]
pub struct TrainingDoctests;

/// The solver guide's code blocks, compiled and run as doctests.
#[doc = include_str!("../docs/solvers.md")]
#[cfg(doctest)]
pub struct SolversDoctests;

/// The README's code blocks, compiled and run as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
