//! The backward walk: one reverse loop over the tape, op-agnostic. Each node
//! hands its incoming global derivative to its op's rule, which returns the
//! contribution for one input; contributions are summed (fan-out adds up).

use super::arena::{Arena, Node, SCALAR};
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
        if ready.is_none() && !tape.is_detecting_anomaly() && root < tape.partials_len.get() {
            walk_replayed(tape, root, seed.item(), &mut grads);
            return Gradients::new(tape, grads);
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
    let nodes = &arena.nodes;
    grads.reset(root + 1, arena.tensors.len());
    match nodes[root].as_scalar() {
        Some(_) => {
            grads.scalar[root] = seed.item();
            grads.reached[root] = true;
        }
        None => grads.tensor[nodes[root].tensor as usize] = Some(seed),
    }
    // Runs of scalar nodes go through a tight loop of their own; it stops
    // at each node that needs the general step (tensors, custom ops).
    let mut end = root + 1;
    loop {
        let next = if ready.is_some() {
            scalar_run::<T, VISIT, true>(tape, nodes, end, grads, &mut visit)
        } else {
            scalar_run::<T, VISIT, false>(tape, nodes, end, grads, &mut visit)
        };
        let Some(i) = next else { break };
        match (&mut ready, nodes[i].is_leaf()) {
            (Some(ready), true) => match nodes[i].as_scalar() {
                Some(_) => ready(i, &Tensor::scalar(grads.scalar[i])),
                None => {
                    if let Some(g) = &grads.tensor[nodes[i].tensor as usize] {
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
fn zero_unreached_tensor_leaves<T: Element>(
    arena: &Arena<T>,
    root: usize,
    grads: &mut GradSlots<T>,
) {
    for (slot, &owner) in arena.owners.iter().enumerate() {
        let node = &arena.nodes[owner as usize];
        if owner as usize <= root && node.is_leaf() && node.requires_grad {
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
    nodes: &[Node<T>],
    end: usize,
    grads: &mut GradSlots<T>,
    visit: &mut impl FnMut(usize, usize, usize, &Tensor<T>),
) -> Option<usize> {
    for i in (0..end).rev() {
        prefetch(nodes, i.wrapping_sub(PREFETCH_AHEAD));
        let node = &nodes[i];
        if !node.requires_grad {
            // The scalar step passes contributions to every scalar input;
            // one that needs no gradient drops them here.
            grads.reached[i] = false;
        } else if node.is_leaf() {
            if LEAVES && (node.tensor != SCALAR || grads.reached[i]) {
                return Some(i);
            }
            // A scalar leaf's gradient is its slot, zero if never reached.
            grads.reached[i] = node.tensor == SCALAR;
        } else if node.tensor != SCALAR {
            return Some(i);
        } else if grads.reached[i] {
            // Elementwise op on scalars: local derivative times global, on
            // plain numbers (the chapter's rule, no tensors at all).
            let g = grads.scalar[i];
            if !scalar_step::<T, VISIT>(tape, nodes, i, g, grads, visit) {
                return Some(i);
            }
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
    let nodes = &arena.nodes;
    let node = &nodes[i];
    // The node's global derivative: a number or a tensor slot.
    let g = match node.as_scalar() {
        Some(_) => Tensor::scalar(grads.scalar[i]),
        None => match grads.tensor[node.tensor as usize].take() {
            Some(g) => g,
            None => return,
        },
    };
    let inputs = arena.inputs(i);
    let mut scalars = SmallVec::new();
    let xs = arena.values_of(inputs.iter().map(|&j| j as usize), &mut scalars);
    let y = arena.value(i);
    for (k, &j) in inputs.iter().enumerate() {
        let input = &nodes[j as usize];
        if input.requires_grad {
            let c = node.op.vjp(tape, &xs, &y, &g, k);
            if VISIT {
                visit(i, k, j as usize, &c);
            }
            match input.as_scalar() {
                Some(_) => {
                    grads.scalar[j as usize] = grads.scalar[j as usize] + c.item();
                    grads.reached[j as usize] = true;
                }
                None => accumulate(&mut grads.tensor[input.tensor as usize], c),
            }
        }
    }
    if node.as_scalar().is_none() {
        grads.tensor[node.tensor as usize] = Some(g);
    }
}

/// The walk after a [`Tape::replay`]: every node below `root` is a scalar
/// op whose local derivatives the replay kept, so each node passes
/// `g · partial` to its inputs with no op to consult. The same additions
/// in the same order as [`scalar_step`], so the same bits.
fn walk_replayed<T: Element>(tape: &Tape<T>, root: usize, seed: T, grads: &mut GradSlots<T>) {
    let arena = tape.arena.borrow();
    let partials = tape.partials.borrow();
    let nodes = &arena.nodes[..=root];
    let partials = &partials[..=root];
    grads.reset(root + 1, arena.tensors.len());
    let (scalar, reached) = (&mut grads.scalar[..=root], &mut grads.reached[..=root]);
    scalar[root] = seed;
    reached[root] = true;
    for i in (0..=root).rev() {
        let node = &nodes[i];
        if !node.requires_grad {
            reached[i] = false;
        } else if node.is_leaf() {
            reached[i] = true;
        } else if reached[i] {
            let (g, [pa, pb]) = (scalar[i], partials[i]);
            let [a, b] = node.ins.map(|j| j as usize);
            scalar[a] = scalar[a] + g * pa;
            reached[a] = true;
            if node.n_inputs == 2 {
                scalar[b] = scalar[b] + g * pb;
                reached[b] = true;
            }
        }
    }
    zero_unreached_tensor_leaves(&arena, root, grads);
}

/// How many nodes ahead of the walk to ask the CPU to fetch: the walk runs
/// backwards through memory, which hardware prefetchers follow poorly, and
/// scalar nodes take ~10 ns each, so a few hundred bytes ahead is enough.
const PREFETCH_AHEAD: usize = 12;

#[inline(always)]
fn prefetch<T: Element>(nodes: &[Node<T>], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(n) = nodes.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch only
        // hints the cache (it never faults; `n` is a valid reference).
        unsafe { _mm_prefetch::<_MM_HINT_T0>((n as *const Node<T>).cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (nodes, i);
}

/// The scalar fast path of the walk: if node `i` has one or two inputs,
/// all scalars, and its op has a scalar rule, passes `g · ∂y/∂x_k` to each
/// input and returns true.
///
/// Contributions go to every input, also to one that needs no gradient
/// (a constant): its slot is never read, and the walk clears its reached
/// flag when it gets there. That keeps this loop free of per-input checks.
#[inline(always)]
fn scalar_step<T: Element, const VISIT: bool>(
    tape: &Tape<T>,
    nodes: &[Node<T>],
    i: usize,
    g: T,
    grads: &mut GradSlots<T>,
    visit: &mut impl FnMut(usize, usize, usize, &Tensor<T>),
) -> bool {
    let node = &nodes[i];
    let n = node.n_inputs as usize;
    if n > 2 {
        return false;
    }
    let [a, b] = node.ins.map(|j| j as usize);
    // A unary op reads its one input twice (the second local is 0).
    let b = if n == 2 { b } else { a };
    // Inputs are recorded before the node that uses them; stated once so
    // that the indexing below needs no further bounds checks.
    let (nodes, scalar, reached) = (&nodes[..i], &mut grads.scalar[..i], &mut grads.reached[..i]);
    assert!(a < i && b < i, "node %{i} has an input recorded after it");
    let (xa, xb) = (&nodes[a], &nodes[b]);
    if xa.tensor != SCALAR || xb.tensor != SCALAR {
        return false;
    }
    let Some(locals) = node
        .op
        .scalar_locals(tape, [xa.scalar, xb.scalar], node.scalar)
    else {
        return false;
    };
    for (k, (j, local)) in [a, b].into_iter().zip(locals).take(n).enumerate() {
        let c = g * local;
        scalar[j] = scalar[j] + c;
        reached[j] = true;
        if VISIT && nodes[j].requires_grad {
            visit(i, k, j, &Tensor::scalar(c));
        }
    }
    true
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
        let node = &arena.nodes[i];
        if node.is_leaf() || !node.requires_grad {
            continue;
        }
        let Some(g) = grads[i].take() else { continue };
        let inputs = arena.inputs(i);
        let xs: SmallVec<[Batched<'_, T>; 4]> = inputs
            .iter()
            .map(|&j| Batched::plain(arena.value(j as usize)))
            .collect();
        let xs: SmallVec<[&Batched<'_, T>; 4]> = xs.iter().collect();
        let y = Batched::plain(arena.value(i));
        for (k, &j) in inputs.iter().enumerate() {
            let j = j as usize;
            if !arena.nodes[j].requires_grad {
                continue;
            }
            let mut c = node.op.vjp(tape, &xs, &y, &g, k);
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
            let node = &arena.nodes[i];
            if node.n_inputs == 0 || !node.requires_grad {
                continue;
            }
            let inputs = SmallVec::<[u32; 4]>::from_slice(arena.inputs(i));
            let needs: SmallVec<[bool; 4]> = inputs
                .iter()
                .map(|&j| arena.nodes[j as usize].requires_grad)
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
        let arena = tape.arena.borrow();
        let nodes = &arena.nodes;
        (0..=root)
            .filter(|&i| nodes[i].is_leaf() && nodes[i].requires_grad && grads[i].is_none())
            .map(|i| (i, Shape::from_slice(arena.value(i).shape())))
            .collect()
    };
    for (i, shape) in leaves {
        grads[i] = Some(tape.constant(Tensor::zeros(&shape)));
    }
    GradVars::new(tape, grads)
}
