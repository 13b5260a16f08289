//! The backward walk: one reverse loop over the tape, op-agnostic. Each node
//! hands its incoming global derivative to its op's rule, which returns the
//! contribution for one input; contributions are summed (fan-out adds up).

use super::arena::Arena;
use super::gradients::GradSlots;
use super::{GradVars, Gradients, Tape, Var};
use crate::ops::batched::Batched;
use crate::ops::Pointwise;
use crate::tensor::{Element, Shape, Tensor};
use smallvec::SmallVec;

impl<'t, T: Element> Var<'t, T> {
    /// Reverse-mode gradients of this scalar output with respect to every
    /// node that needs one. The recording is not consumed: calling it again
    /// gives the same answer.
    ///
    /// # Panics
    /// If the output has more than one element (use [`Var::backward_with`]),
    /// or requires no gradient (nothing it was computed from does: it was
    /// recorded inside `no_grad`, or from constants and frozen parameters
    /// only), as PyTorch's "element 0 of tensors does not require grad".
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
        let shape = self.single_element(
            "backward",
            "backward() needs a single element, use backward_with(seed) for a non-scalar output",
        );
        self.assert_requires_grad("backward");
        self.backward_unchecked(Tensor::ones(&shape))
    }

    /// The output's shape; panics unless it has one element, with `advice`.
    #[track_caller]
    fn single_element(&self, op: &str, advice: &str) -> Shape {
        let shape = self.shape();
        assert!(
            shape.iter().product::<usize>() == 1,
            "{op}: output {} has shape {:?}; {advice}",
            self.label(),
            shape.as_slice()
        );
        shape
    }

    /// Panics unless the output needs a gradient: a backward pass from it
    /// would find none, and a training step would silently do nothing.
    #[track_caller]
    fn assert_requires_grad(&self, op: &str) {
        if !self.requires_grad() {
            panic!(
                "{op}: output {} ({}) does not require a gradient: nothing it was computed \
                 from does (it was recorded inside no_grad, or from constants and frozen \
                 parameters only), so every gradient would be missing. Record it with \
                 recording on, from tape.var(...) or trainable parameters",
                self.label(),
                self.op_name()
            );
        }
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
    ///
    /// # Panics
    /// If `seed`'s shape is not the output's, or the output requires no
    /// gradient (as [`Var::backward`]).
    #[track_caller]
    pub fn backward_with(&self, seed: impl Into<Tensor<T>>) -> Gradients<'t, T> {
        self.assert_requires_grad("backward_with");
        self.backward_unchecked(seed)
    }

    /// [`Var::backward_with`] without the requires-gradient check, for the
    /// functional operators (the gradient of a function that ignores its
    /// input is zero, not an error).
    #[track_caller]
    pub(crate) fn backward_unchecked(&self, seed: impl Into<Tensor<T>>) -> Gradients<'t, T> {
        let seed = seed.into();
        let shape = self.shape();
        assert!(
            seed.shape() == shape.as_slice(),
            "backward_with: seed of shape {:?} does not match output {} of shape {:?}",
            seed.shape(),
            self.label(),
            shape.as_slice()
        );
        self.backward_walk(seed, None)
    }

    /// [`Var::backward`], calling `ready(leaf, gradient)` for each leaf that
    /// needs a gradient as soon as its gradient is final, during the walk:
    /// when the walk reaches a leaf, every node that used it has passed its
    /// contribution back. Leaves come in the walk's order (the reverse of
    /// the order they were put on the tape); a leaf the output does not
    /// depend on is never reported (its gradient is zero). This is what
    /// lets data-parallel training start reducing gradients while the rest
    /// of the backward pass runs (PyTorch's gradient hooks).
    ///
    /// ```
    /// use tapegrad::{Tape, Tensor};
    /// let tape = Tape::<f64>::new();
    /// let (a, b) = (tape.var(Tensor::ones([2])), tape.var(Tensor::ones([2])));
    /// let y = (a * 2.0 + b * 3.0).sum();
    /// let mut seen = Vec::new();
    /// let g = y.backward_with_hook(|leaf, grad| seen.push((leaf.index(), grad.data()[0])));
    /// assert_eq!(seen, [(b.index(), 3.0), (a.index(), 2.0)]);
    /// assert_eq!(g[a].data(), &[2.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// As [`Var::backward`].
    #[track_caller]
    pub fn backward_with_hook(
        &self,
        mut ready: impl FnMut(Var<'t, T>, &Tensor<T>),
    ) -> Gradients<'t, T> {
        let shape = self.single_element("backward_with_hook", "it needs a single element");
        self.assert_requires_grad("backward_with_hook");
        let tape = self.tape();
        let epoch = tape.epoch();
        let mut hook = |i: usize, g: &Tensor<T>| ready(Var::from_parts(tape, i as u32, epoch), g);
        self.backward_walk(Tensor::ones(&shape), Some(&mut hook))
    }

    /// The eager walk from this output with `seed`, reporting finished
    /// leaves to `ready` if given.
    fn backward_walk(&self, seed: Tensor<T>, ready: Option<Ready<'_, T>>) -> Gradients<'t, T> {
        let tape = self.tape();
        // Gradients are values the program can branch on (for replay).
        tape.note_read();
        let root = self.index();
        let mut grads = tape.take_spare();
        if ready.is_none() && !tape.is_detecting_anomaly() {
            // After a replay: the compiled walk on the kept partials.
            let mut program = tape.program.borrow_mut();
            if program.can_walk(root) {
                program.walk(&tape.arena.borrow(), root, seed.item(), &mut grads);
                drop(program);
                return Gradients::new(tape, grads);
            }
        }
        if tape.is_detecting_anomaly() {
            let check = |i, k, j, c: &Tensor<T>| tape.anomaly_backward(i, k, j, c);
            walk_eager::<T, true>(tape, root, seed, &mut grads, check, ready);
        } else {
            walk_eager::<T, false>(tape, root, seed, &mut grads, |_, _, _, _| {}, ready);
        }
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
        let shape = self.single_element(
            "backward_recorded",
            "use backward_recorded_with(seed) for a non-scalar output",
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

/// A scalar gradient slot's sum so far: its number once `reached`, else
/// zero (the slot holds whatever an earlier walk left; see `GradSlots`).
#[inline(always)]
fn sum_so_far<T: Element>(scalar: &[T], reached: &[bool], j: usize) -> T {
    if reached[j] {
        scalar[j]
    } else {
        T::zero()
    }
}

/// Adds contribution `c` to scalar node `j`'s gradient; a first
/// contribution is the gradient so far, as in PyTorch (so a single `-0.0`
/// stays `-0.0`), with no addition to zero.
#[inline(always)]
fn add_contribution<T: Element>(scalar: &mut [T], reached: &mut [bool], j: usize, c: T) {
    scalar[j] = if reached[j] { scalar[j] + c } else { c };
    reached[j] = true;
}

/// A scalar leaf the walk reaches the bottom of: its gradient is its slot,
/// zero if nothing was passed to it.
#[inline(always)]
fn settle_leaf<T: Element>(scalar: &mut [T], reached: &mut [bool], i: usize) {
    if !reached[i] {
        scalar[i] = T::zero();
        reached[i] = true;
    }
}

/// Told each leaf whose gradient is final: its node and its gradient.
pub(crate) type Ready<'r, T> = &'r mut dyn FnMut(usize, &Tensor<T>);

/// The eager walk. `visit(node, k, input, contribution)` sees every
/// contribution as it is passed back (the trace records them; plain
/// backward passes a closure that does nothing); `ready`, if given, each
/// reached leaf that needs a gradient, when the walk gets to it.
pub(crate) fn walk_eager<T: Element, const VISIT: bool>(
    tape: &Tape<T>,
    root: usize,
    seed: Tensor<T>,
    grads: &mut GradSlots<T>,
    mut visit: impl FnMut(usize, usize, usize, &Tensor<T>),
    mut ready: Option<Ready<'_, T>>,
) {
    let arena = tape.arena.borrow();
    grads.reset(root + 1, arena.tensors.len());
    match arena.tensor_slot(root) {
        None => {
            grads.scalar[root] = seed.item();
            grads.reached[root] = true;
        }
        Some(slot) => grads.tensor[slot] = Some(seed),
    }
    // Runs of scalar nodes go through a tight loop of their own; it stops
    // at each node that needs the general step (tensors, custom ops).
    let mut end = root + 1;
    loop {
        let next = if ready.is_some() {
            scalar_run::<T, VISIT, true>(tape, &arena, end, grads, &mut visit)
        } else {
            scalar_run::<T, VISIT, false>(tape, &arena, end, grads, &mut visit)
        };
        let Some(i) = next else { break };
        match (&mut ready, arena.is_leaf(i)) {
            (Some(ready), true) => match arena.tensor_slot(i) {
                None => ready(i, &Tensor::scalar(grads.scalar[i])),
                Some(slot) => {
                    if let Some(g) = &grads.tensor[slot] {
                        ready(i, g);
                    }
                }
            },
            _ => general_step::<T, VISIT>(tape, &arena, i, grads, &mut visit),
        }
        end = i;
    }
    zero_unreached_tensor_leaves(&arena, root, grads);
}

/// Tensor leaves that need a gradient but do not reach the output get
/// zeros, as in JAX, rather than a missing entry (scalar leaves read 0).
pub(crate) fn zero_unreached_tensor_leaves<T: Element>(
    arena: &Arena<T>,
    root: usize,
    grads: &mut GradSlots<T>,
) {
    for (slot, &owner) in arena.owners.iter().enumerate() {
        let flags = arena.flags[owner as usize];
        if owner as usize <= root && flags.is_leaf() && flags.requires_grad() {
            grads.tensor[slot].get_or_insert_with(|| Tensor::zeros(arena.tensors[slot].shape()));
        }
    }
}

/// Walks down from node `end - 1` through the nodes that need no tensor:
/// leaves, nodes that need no gradient, unreached scalar nodes and scalar
/// ops on scalar inputs. Returns the first node that needs
/// [`general_step`] (or, with `LEAVES`, a reached leaf that needs a
/// gradient), or `None` at the bottom of the tape. Kept apart from the
/// general step so that this loop keeps its state in registers.
#[inline(never)]
fn scalar_run<T: Element, const VISIT: bool, const LEAVES: bool>(
    tape: &Tape<T>,
    arena: &Arena<T>,
    end: usize,
    grads: &mut GradSlots<T>,
    visit: &mut impl FnMut(usize, usize, usize, &Tensor<T>),
) -> Option<usize> {
    let (values, flags) = (&arena.values[..end], &arena.flags[..end]);
    // The walk goes down the records as it goes down the nodes.
    let mut r = arena.records_before(end);
    let (scalar, reached) = (&mut grads.scalar[..end], &mut grads.reached[..end]);
    for i in (0..end).rev() {
        let f = flags[i];
        r -= f.has_record() as usize;
        if !f.requires_grad() {
            // The scalar step passes contributions to every scalar input;
            // one that needs no gradient drops them here.
            reached[i] = false;
        } else if f.is_scalar_op() {
            if !reached[i] {
                continue;
            }
            // Elementwise op on scalars: local derivative times global, on
            // plain numbers (the chapter's rule, no tensors at all).
            let record = &arena.records[r];
            let [a, b] = record.ins.map(|j| j as usize);
            let n = f.arity() as usize;
            // A unary op reads its one input twice (the second local is 0).
            let b = if n == 2 { b } else { a };
            // Inputs are recorded before the node that uses them; stated
            // once so that the indexing below needs no further checks.
            assert!(a < i && b < i, "node %{i} has an input recorded after it");
            let Some(locals) = record
                .op
                .scalar_locals(tape, [values[a], values[b]], values[i])
            else {
                return Some(i);
            };
            let g = scalar[i];
            for (k, (j, local)) in [a, b].into_iter().zip(locals).take(n).enumerate() {
                let c = g * local;
                add_contribution(scalar, reached, j, c);
                if VISIT && flags[j].requires_grad() {
                    visit(i, k, j, &Tensor::scalar(c));
                }
            }
        } else if f.is_leaf() {
            if LEAVES && (f.is_tensor() || reached[i]) {
                return Some(i);
            }
            if !f.is_tensor() {
                settle_leaf(scalar, reached, i);
            }
        } else if f.is_tensor() || reached[i] {
            // Tensors, and scalar nodes of other ops (reductions, custom
            // ops, many inputs) that the walk reached.
            return Some(i);
        }
    }
    None
}

/// One node through its op's `vjp` on tensors: tensor nodes, and scalar
/// nodes whose op has no scalar rule or whose inputs are tensors.
fn general_step<T: Element, const VISIT: bool>(
    tape: &Tape<T>,
    arena: &Arena<T>,
    i: usize,
    grads: &mut GradSlots<T>,
    visit: &mut impl FnMut(usize, usize, usize, &Tensor<T>),
) {
    let slot = arena.tensor_slot(i);
    // The node's global derivative: a number or a tensor slot.
    let g = match slot {
        None => Tensor::scalar(sum_so_far(&grads.scalar, &grads.reached, i)),
        Some(slot) => match grads.tensor[slot].take() {
            Some(g) => g,
            None => return,
        },
    };
    let (op, inputs) = arena.op_inputs(i);
    let mut scalars = SmallVec::new();
    let xs = arena.values_of(inputs.iter().map(|&j| j as usize), &mut scalars);
    let y = arena.value(i);
    for (k, &j) in inputs.iter().enumerate() {
        let j = j as usize;
        if arena.requires_grad(j) {
            let c = op.vjp(tape, &xs, &y, &g, k);
            if VISIT {
                visit(i, k, j, &c);
            }
            match arena.tensor_slot(j) {
                None => add_contribution(&mut grads.scalar, &mut grads.reached, j, c.item()),
                Some(input_slot) => accumulate(&mut grads.tensor[input_slot], c),
            }
        }
    }
    if let Some(slot) = slot {
        grads.tensor[slot] = Some(g);
    }
}

/// One backward pass for a batch of seeds: `seeds` has shape
/// `[B] ++ output shape`, and the result holds, for each node of `wrt`, its
/// `B` gradients stacked (`[B] ++ node shape`): the rows of a Jacobian in
/// one pass instead of `B` (see [`crate::ops::batched`]).
pub(crate) fn walk_batched<T: Element>(
    tape: &Tape<T>,
    root: usize,
    seeds: Tensor<T>,
    wrt: &[usize],
) -> Vec<Tensor<T>> {
    let arena = tape.arena.borrow();
    let batch = seeds.shape()[0];
    let mut grads: Vec<Option<Batched<'_, T>>> = vec![None; root + 1];
    grads[root] = Some(Batched::batch(seeds));
    for i in (0..=root).rev() {
        if arena.is_leaf(i) || !arena.requires_grad(i) {
            continue;
        }
        let Some(g) = grads[i].take() else { continue };
        let (op, inputs) = arena.op_inputs(i);
        let xs: SmallVec<[Batched<'_, T>; 4]> = inputs
            .iter()
            .map(|&j| Batched::plain(arena.value(j as usize)))
            .collect();
        let xs: SmallVec<[&Batched<'_, T>; 4]> = xs.iter().collect();
        let y = Batched::plain(arena.value(i));
        for (k, &j) in inputs.iter().enumerate() {
            let j = j as usize;
            if !arena.requires_grad(j) {
                continue;
            }
            let mut c = op.vjp(tape, &xs, &y, &g, k);
            if c.batch.is_none() {
                // A contribution that does not depend on the seed (zero).
                let mut full: crate::tensor::Shape = [batch].into_iter().collect();
                full.extend_from_slice(c.t.shape());
                c = Batched::batch(c.t.broadcast_to(&full));
            }
            grads[j] = Some(match grads[j].take() {
                Some(acc) => acc.add(&c),
                None => c,
            });
        }
    }
    wrt.iter()
        .map(|&w| match grads.get_mut(w).and_then(Option::take) {
            Some(g) => g.t.into_owned(),
            None => {
                let mut full: crate::tensor::Shape = [batch].into_iter().collect();
                full.extend_from_slice(arena.value(w).shape());
                Tensor::zeros(full)
            }
        })
        .collect()
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
            let arena = tape.arena.borrow();
            if arena.is_leaf(i) || !arena.requires_grad(i) {
                continue;
            }
            let (op, inputs) = arena.op_inputs(i);
            let inputs = SmallVec::<[u32; 4]>::from_slice(inputs);
            let needs: SmallVec<[bool; 4]> = inputs
                .iter()
                .map(|&j| arena.requires_grad(j as usize))
                .collect();
            (op, inputs, needs)
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
        let arena = tape.arena.borrow();
        (0..=root)
            .filter(|&i| arena.is_leaf(i) && arena.requires_grad(i) && grads[i].is_none())
            .map(|i| (i, Shape::from_slice(arena.value(i).shape())))
            .collect()
    };
    for (i, shape) in leaves {
        grads[i] = Some(tape.constant(Tensor::zeros(&shape)));
    }
    GradVars::new(tape, grads)
}
