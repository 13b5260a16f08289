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
mod html;
mod render;

pub use dot::to_dot;
pub use html::HtmlPage;
pub(crate) use render::num as number;
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
    /// The local derivative as the chapter writes it, for elementwise ops:
    /// a template such as `1 - {y}²` over `{x}` (a unary op's input),
    /// `{a}`, `{b}` (a binary op's inputs) and `{y}` (the node); see
    /// [`Trace::local_formula`] for it with labels and numbers filled in.
    pub formula: Option<String>,
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

/// One node of the recorded graph, as the forward pass left it.
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode<T: Element> {
    /// The node's position on the tape.
    pub node: usize,
    /// Its name or `%index`.
    pub label: String,
    /// The op that made it (`"leaf"`, `"constant"` for inputs).
    pub op: &'static str,
    /// Its forward value.
    pub value: Tensor<T>,
    /// Its inputs' positions on the tape, in argument order.
    pub inputs: Vec<usize>,
}

/// The record of one backward walk, in the order the nodes were visited:
/// the output first, then back towards the inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<T: Element> {
    /// The output's label.
    pub output: String,
    /// The visited nodes.
    pub steps: Vec<Step<T>>,
    /// Every node the output depends on (constants and inputs that need
    /// no gradient included), in tape order: the graph the walk ran on.
    pub graph: Vec<GraphNode<T>>,
}

impl<T: Element> Trace<T> {
    /// The step of the node `v`, if the walk reached it.
    pub fn step(&self, v: Var<'_, T>) -> Option<&Step<T>> {
        let i = v.index();
        self.steps.iter().find(|s| s.node == i)
    }

    /// The graph node at tape position `node`.
    pub fn node(&self, node: usize) -> Option<&GraphNode<T>> {
        self.graph
            .binary_search_by_key(&node, |g| g.node)
            .ok()
            .map(|i| &self.graph[i])
    }

    /// The local derivative of `step`'s input `input` as the chapter
    /// writes it, twice: with labels (`1 - y²`) and with the forward
    /// values plugged in (`1 - 0.291313²`), numbers at `digits`
    /// significant digits. `None` for ops with no formula or tensor
    /// values (their local derivative is a Jacobian).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let z = tape.var(0.3).named("z");
    /// let y = z.tanh().named("y");
    /// let trace = y.backward_traced();
    /// let (symbols, numbers) = trace.local_formula(&trace.steps[0], 0, 6).unwrap();
    /// assert_eq!(symbols, "1 - y²");
    /// assert_eq!(numbers, "1 - 0.291313²");
    /// ```
    pub fn local_formula(
        &self,
        step: &Step<T>,
        input: usize,
        digits: usize,
    ) -> Option<(String, String)> {
        let template = step.inputs.get(input)?.formula.as_deref()?;
        let me = self.node(step.node)?;
        let args: Vec<&GraphNode<T>> = me
            .inputs
            .iter()
            .map(|&j| self.node(j))
            .collect::<Option<_>>()?;
        let fill = |text: bool| -> Option<String> {
            let show = |g: &GraphNode<T>| -> Option<String> {
                if text {
                    return Some(render::d(&g.label));
                }
                let v = (g.value.numel() == 1).then(|| g.value.data()[0])?;
                let s = render::num_digits(v, digits);
                Some(if s.starts_with('-') {
                    format!("({s})")
                } else {
                    s
                })
            };
            let mut out = template.to_string();
            let slots = [("{y}", Some(me)), ("{x}", args.first().copied())];
            let pair = [
                ("{a}", args.first().copied()),
                ("{b}", args.get(1).copied()),
            ];
            for (key, g) in slots.into_iter().chain(pair) {
                if out.contains(key) {
                    out = out.replace(key, &show(g?)?);
                }
            }
            Some(out)
        };
        Some((fill(true)?, fill(false)?))
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
            let (op, ins) = arena.op_inputs(i);
            let value = arena.value(i);
            let mut scalars = smallvec::SmallVec::new();
            let xs = arena.values_of(ins.iter().map(|&j| j as usize), &mut scalars);
            let inputs = contributions
                .iter()
                .filter(|c| c.0 == i)
                .map(|(_, k, j, c)| InputStep {
                    node: *j,
                    label: tape.label_of(*j),
                    local: local_derivative(tape, &op, &xs, &value, *k),
                    contribution: c.clone(),
                    formula: op.formula(tape, *k),
                })
                .collect();
            let op = tape.op_name(&op);
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
            graph: graph_of(tape, &arena, root),
        }
    }
}

/// Every node `root` depends on, in tape order.
fn graph_of<T: Element>(
    tape: &crate::Tape<T>,
    arena: &crate::tape::Arena<T>,
    root: usize,
) -> Vec<GraphNode<T>> {
    let mut needed = vec![false; root + 1];
    needed[root] = true;
    // Inputs come before their consumers, so one backward sweep marks all.
    for i in (0..=root).rev() {
        if needed[i] {
            for &j in arena.inputs(i) {
                needed[j as usize] = true;
            }
        }
    }
    (0..=root)
        .filter(|&i| needed[i])
        .map(|i| GraphNode {
            node: i,
            label: tape.label_of(i),
            op: tape.op_name(&arena.op(i)),
            value: arena.value(i).into_owned(),
            inputs: arena.inputs(i).iter().map(|&j| j as usize).collect(),
        })
        .collect()
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
