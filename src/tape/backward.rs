//! The backward walk: one reverse loop over the tape, op-agnostic. Each node
//! hands its incoming global derivative to its op's rule, which returns the
//! contribution for one input; contributions are summed (fan-out adds up).

use super::{GradVars, Gradients, Tape, Var};
use crate::tensor::{Element, Tensor};
use smallvec::SmallVec;

impl<'t, T: Element> Var<'t, T> {
    /// Reverse-mode gradients of this scalar output with respect to every
    /// node that needs one. The recording is not consumed: calling it again
    /// gives the same answer.
    ///
    /// # Panics
    /// If the output has more than one element (use [`Var::backward_with`]).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(2.0);
    /// let y = x.sin() * x;
    /// let g = y.backward();
    /// assert!((g[x].item() - (2f64.cos() * 2.0 + 2f64.sin())).abs() < 1e-15);
    /// ```
    #[track_caller]
    pub fn backward(&self) -> Gradients<'t, T> {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward: output {} has shape {:?}; backward() needs a single element, \
             use backward_with(seed) for a non-scalar output",
            self.label(),
            shape.as_slice()
        );
        self.backward_with(Tensor::ones(&shape))
    }

    /// Gradients of `seed · output` (a vector-Jacobian product): `seed` has
    /// the output's shape and is the global derivative the output receives.
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let y = x * x;
    /// let g = y.backward_with(Tensor::from_vec(vec![1.0, 10.0], [2]));
    /// assert_eq!(g[x].data(), &[2.0, 40.0]);
    /// ```
    #[track_caller]
    pub fn backward_with(&self, seed: impl Into<Tensor<T>>) -> Gradients<'t, T> {
        let seed = seed.into();
        let root = self.index();
        let tape = self.tape();
        let shape = self.shape();
        assert!(
            seed.shape() == shape.as_slice(),
            "backward_with: seed of shape {:?} does not match output {} of shape {:?}",
            seed.shape(),
            self.label(),
            shape.as_slice()
        );
        let mut grads = tape.take_spare();
        walk_eager::<T, false>(tape, root, seed, &mut grads, |_, _, _, _| {});
        Gradients::new(tape, grads)
    }

    /// Like [`Var::backward`], but the backward pass is itself recorded on
    /// the tape: every gradient is a [`Var`] that can go through more ops
    /// and be differentiated again (grad of grad).
    ///
    /// ```
    /// use tapegrad::Tape;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.var(3.0);
    /// let y = x * x * x;
    /// let dy = y.backward_recorded()[x];  // 3x² = 27, as a Var
    /// let d2y = dy.backward()[x].item();   // 6x = 18
    /// assert_eq!((dy.item(), d2y), (27.0, 18.0));
    /// ```
    #[track_caller]
    pub fn backward_recorded(&self) -> GradVars<'t, T> {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "backward_recorded: output {} has shape {:?}; use backward_recorded_with(seed) \
             for a non-scalar output",
            self.label(),
            shape.as_slice()
        );
        self.backward_recorded_with(self.constant_like(Tensor::ones(&shape)))
    }

    /// Recorded vector-Jacobian product with a seed that is itself a
    /// [`Var`] (so the result can be differentiated with respect to the
    /// seed too).
    #[track_caller]
    pub fn backward_recorded_with(&self, seed: Var<'t, T>) -> GradVars<'t, T> {
        self.same_tape(&seed, "backward_recorded_with");
        assert!(
            seed.shape() == self.shape(),
            "backward_recorded_with: seed {} of shape {:?} does not match output {} of shape {:?}",
            seed.label(),
            seed.shape().as_slice(),
            self.label(),
            self.shape().as_slice()
        );
        walk_recorded(self.tape(), self.index(), seed)
    }
}

/// Adds a contribution into a gradient slot.
fn accumulate<T: Element>(slot: &mut Option<Tensor<T>>, c: Tensor<T>) {
    match slot {
        Some(acc) => acc.add_assign(&c),
        None => *slot = Some(c),
    }
}

/// The eager walk. `visit(node, k, input, contribution)` sees every
/// contribution as it is passed back (the trace records them; plain
/// backward passes a closure that does nothing).
pub(crate) fn walk_eager<T: Element, const VISIT: bool>(
    tape: &Tape<T>,
    root: usize,
    seed: Tensor<T>,
    grads: &mut Vec<Option<Tensor<T>>>,
    mut visit: impl FnMut(usize, usize, usize, &Tensor<T>),
) {
    let nodes = tape.nodes.borrow();
    let edges = tape.edges.borrow();
    grads.clear();
    grads.resize_with(root + 1, || None);
    grads[root] = Some(seed);
    for i in (0..=root).rev() {
        let node = &nodes[i];
        if node.n_inputs == 0 || !node.requires_grad {
            continue;
        }
        let (before, rest) = grads.split_at_mut(i);
        let Some(g) = &rest[0] else { continue };
        let inputs = &edges[node.first_input as usize..][..node.n_inputs as usize];
        // Scalar nodes of elementwise ops: local derivative times global,
        // on plain numbers (the chapter's rule, without tensor temporaries).
        if node.value.ndim() == 0 && inputs.len() <= 2 {
            let mut xs = [T::zero(); 2];
            let all_scalar = inputs.iter().zip(&mut xs).all(|(&j, x)| {
                let v = &nodes[j as usize].value;
                *x = v.data()[0];
                v.ndim() == 0
            });
            let n = inputs.len();
            let y = node.value.data()[0];
            // Every input's local derivative, or None for ops without a
            // scalar rule (those take the general path below).
            let locals: Option<SmallVec<[T; 2]>> = if all_scalar {
                (0..n)
                    .map(|k| node.op.scalar_local(&xs[..n], y, k))
                    .collect()
            } else {
                None
            };
            if let Some(locals) = locals {
                let gs = g.data()[0];
                for (k, (&j, local)) in inputs.iter().zip(locals).enumerate() {
                    if nodes[j as usize].requires_grad {
                        let c = gs * local;
                        match &mut before[j as usize] {
                            Some(acc) => acc.data_mut()[0] = acc.data()[0] + c,
                            slot => *slot = Some(Tensor::scalar(c)),
                        }
                        if VISIT {
                            visit(i, k, j as usize, &Tensor::scalar(c));
                        }
                    }
                }
                continue;
            }
        }
        let xs: SmallVec<[&Tensor<T>; 4]> =
            inputs.iter().map(|&j| &nodes[j as usize].value).collect();
        for (k, &j) in inputs.iter().enumerate() {
            if nodes[j as usize].requires_grad {
                let c = node.op.vjp(tape, &xs, &node.value, g, k);
                if VISIT {
                    visit(i, k, j as usize, &c);
                }
                accumulate(&mut before[j as usize], c);
            }
        }
    }
    // Leaves that need a gradient but do not reach the output get zeros,
    // as in JAX, rather than a missing entry.
    for (i, node) in nodes[..=root].iter().enumerate() {
        if node.n_inputs == 0 && node.requires_grad && grads[i].is_none() {
            grads[i] = Some(Tensor::zeros(node.value.shape()));
        }
    }
}

fn walk_recorded<'t, T: Element>(
    tape: &'t Tape<T>,
    root: usize,
    seed: Var<'t, T>,
) -> GradVars<'t, T> {
    let mut grads: Vec<Option<Var<'t, T>>> = vec![None; root + 1];
    grads[root] = Some(seed);
    let epoch = tape.epoch();
    for i in (0..=root).rev() {
        // Copy what the rule needs, then release the borrow: the rule records.
        let (op, inputs, needs) = {
            let nodes = tape.nodes.borrow();
            let node = &nodes[i];
            if node.n_inputs == 0 || !node.requires_grad {
                continue;
            }
            let edges = tape.edges.borrow();
            let inputs: SmallVec<[u32; 4]> =
                edges[node.first_input as usize..][..node.n_inputs as usize].into();
            let needs: SmallVec<[bool; 4]> = inputs
                .iter()
                .map(|&j| nodes[j as usize].requires_grad)
                .collect();
            (node.op, inputs, needs)
        };
        let Some(g) = grads[i] else { continue };
        let xs: SmallVec<[Var<'t, T>; 4]> = inputs
            .iter()
            .map(|&j| Var::from_parts(tape, j, epoch))
            .collect();
        let x_refs: SmallVec<[&Var<'t, T>; 4]> = xs.iter().collect();
        let y = Var::from_parts(tape, i as u32, epoch);
        for (k, &j) in inputs.iter().enumerate() {
            if needs[k] {
                let c = op.vjp(tape, &x_refs, &y, &g, k);
                let slot = &mut grads[j as usize];
                *slot = Some(match *slot {
                    Some(acc) => acc + c,
                    None => c,
                });
            }
        }
    }
    let leaves: Vec<(usize, crate::tensor::Shape)> = {
        let nodes = tape.nodes.borrow();
        (0..=root)
            .filter(|&i| nodes[i].n_inputs == 0 && nodes[i].requires_grad && grads[i].is_none())
            .map(|i| (i, nodes[i].value.shape().into()))
            .collect()
    };
    for (i, shape) in leaves {
        grads[i] = Some(tape.constant(Tensor::zeros(&shape)));
    }
    GradVars::new(tape, grads)
}
