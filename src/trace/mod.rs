//! Watching the chain rule happen: a step-by-step record of the backward
//! walk, renderings of it (a table, Markdown with LaTeX, the chain-rule
//! product along every path to a leaf), Graphviz pictures, and an
//! expression explainer.
//!
//! ```
//! use tapegrad::Tape;
//! let tape = Tape::<f64>::new();
//! let (x, w, b) = (tape.var(1.0).named("x"), tape.var(0.5).named("w"), tape.var(-0.2).named("b"));
//! let z = (w * x + b).named("z");
//! let y = z.tanh().named("y");
//! let trace = y.backward_traced();
//! // The walk visits y, then z, then the node w·x, then the leaves.
//! assert_eq!(trace.steps[0].label, "y");
//! assert_eq!(trace.steps[1].label, "z");
//! let dy_dz = trace.steps[0].inputs[0].local.scalar().unwrap();
//! assert!((dy_dz - (1.0 - y.item().powi(2))).abs() < 1e-15);
//! println!("{trace}");
//! println!("{}", trace.paths_to(w).unwrap());
//! ```

mod dot;
pub mod expr;
mod render;

pub use dot::to_dot;
pub use render::{Link, PathProducts};

use crate::tape::backward::walk_eager;
use crate::tape::Var;
use crate::tensor::{Element, Tensor};

/// A local derivative `∂ node / ∂ input`.
#[derive(Clone, Debug, PartialEq)]
pub enum Local<T: Element> {
    /// Both are scalars: one number.
    Scalar(T),
    /// The local Jacobian, shape `(node elements, input elements)`, when
    /// it has at most [`MAX_SHOWN_JACOBIAN`] entries.
    Jacobian(Tensor<T>),
    /// A larger Jacobian, summarised: its shape and Frobenius norm.
    Summary {
        /// `(node elements, input elements)`.
        shape: (usize, usize),
        /// `‖J‖_F`.
        norm: T,
    },
}

/// Local Jacobians up to this many entries are shown in full.
pub const MAX_SHOWN_JACOBIAN: usize = 64;

impl<T: Element> Local<T> {
    /// The number, for a scalar local derivative.
    pub fn scalar(&self) -> Option<T> {
        match self {
            Local::Scalar(v) => Some(*v),
            _ => None,
        }
    }
}

/// What one input of a node receives.
#[derive(Clone, Debug, PartialEq)]
pub struct InputStep<T: Element> {
    /// The input's position on the tape.
    pub node: usize,
    /// Its name or `%index`.
    pub label: String,
    /// `∂ node / ∂ input`.
    pub local: Local<T>,
    /// `global × local`: what is passed back to the input.
    pub contribution: Tensor<T>,
}

/// One node of the backward walk.
#[derive(Clone, Debug, PartialEq)]
pub struct Step<T: Element> {
    /// The node's position on the tape.
    pub node: usize,
    /// Its name or `%index`.
    pub label: String,
    /// The op that made it (`"leaf"` for inputs).
    pub op: &'static str,
    /// Its forward value.
    pub value: Tensor<T>,
    /// The global derivative `∂ output / ∂ node` it received.
    pub global: Tensor<T>,
    /// How many contributions were summed into `global` (more than one
    /// where the node fans out to several consumers; 0 for the output).
    pub received: usize,
    /// Each input that needs a gradient, with its local derivative and
    /// what it is passed.
    pub inputs: Vec<InputStep<T>>,
}

/// The record of one backward walk, in the order the nodes were visited:
/// the output first, then back towards the inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<T: Element> {
    /// The output's label.
    pub output: String,
    /// The visited nodes.
    pub steps: Vec<Step<T>>,
}

impl<T: Element> Trace<T> {
    /// The step of the node `v`, if the walk reached it.
    pub fn step(&self, v: Var<'_, T>) -> Option<&Step<T>> {
        let i = v.index();
        self.steps.iter().find(|s| s.node == i)
    }
}

impl<'t, T: Element> Var<'t, T> {
    /// Runs backward from this scalar output and records every step: each
    /// node's value and global derivative, and for each of its inputs the
    /// local derivative and the contribution passed back.
    ///
    /// # Panics
    /// If the output has more than one element.
    #[track_caller]
    pub fn backward_traced(&self) -> Trace<T> {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward_traced: output {} has shape {:?}; tracing starts from a single element",
            self.label(),
            shape.as_slice()
        );
        let tape = self.tape();
        let root = self.index();
        let mut contributions: Vec<(usize, usize, usize, Tensor<T>)> = Vec::new();
        let mut grads = crate::tape::GradSlots::default();
        walk_eager::<T, true>(
            tape,
            root,
            Tensor::ones(&shape),
            &mut grads,
            |node, k, input, c| {
                contributions.push((node, k, input, c.clone()));
            },
            None,
        );
        let arena = tape.arena.borrow();
        let mut steps = Vec::new();
        for i in (0..=root).rev() {
            let Some(global) = grads.get(&arena, i).map(|g| g.into_owned()) else {
                continue;
            };
            let node = &arena.nodes[i];
            let value = arena.value(i);
            let mut scalars = smallvec::SmallVec::new();
            let xs = arena.values_of(arena.inputs(i).iter().map(|&j| j as usize), &mut scalars);
            let inputs = contributions
                .iter()
                .filter(|c| c.0 == i)
                .map(|(_, k, j, c)| InputStep {
                    node: *j,
                    label: tape.label_of(*j),
                    local: local_derivative(tape, &node.op, &xs, &value, *k),
                    contribution: c.clone(),
                })
                .collect();
            let op = tape.op_name(&node.op);
            steps.push(Step {
                node: i,
                label: tape.label_of(i),
                op,
                value: value.into_owned(),
                global,
                received: contributions.iter().filter(|c| c.2 == i).count(),
                inputs,
            });
        }
        Trace {
            output: tape.label_of(root),
            steps,
        }
    }
}

/// `∂y/∂x_k` from the op's own rule: its vector-Jacobian product with each
/// unit seed gives one row of the local Jacobian.
fn local_derivative<T: Element>(
    tape: &crate::Tape<T>,
    op: &crate::ops::Op,
    xs: &[&Tensor<T>],
    y: &Tensor<T>,
    k: usize,
) -> Local<T> {
    let (m, n) = (y.numel(), xs[k].numel());
    let row = |i: usize| op.vjp(tape, xs, y, &Tensor::one_hot(y.shape(), i), k);
    if m == 1 && n == 1 {
        return Local::Scalar(row(0).item());
    }
    if m * n <= MAX_SHOWN_JACOBIAN {
        let data: Vec<T> = (0..m).flat_map(|i| row(i).to_vec()).collect();
        return Local::Jacobian(Tensor::from_vec(data, [m, n]));
    }
    let norm = (0..m)
        .map(|i| row(i).data().iter().fold(T::zero(), |s, v| s + *v * *v))
        .fold(T::zero(), |a, b| a + b)
        .sqrt();
    Local::Summary {
        shape: (m, n),
        norm,
    }
}
