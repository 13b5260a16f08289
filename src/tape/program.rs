//! A recorded scalar program compiled for [`Tape::replay`]: its op nodes
//! as a flat list of steps, run forward with new leaf values, and a plan
//! for the backward walk from one output, worked out once.
//!
//! A replay runs the same program many times, so what the walks work out
//! per node (which slot a contribution starts, whether an input needs a
//! gradient, whether the input is the node just computed) is worked out
//! once here and kept as a few bits per step. The replayed walks are then
//! the chapter's arithmetic and little else: each step's forward and local
//! derivatives, then a multiply-add per edge. The value a step has just
//! computed is handed to the next in a register rather than through
//! memory, which keeps a chain of ops (W1's) off the store-to-load path.

use super::backward::zero_unreached_tensor_leaves;
use super::{Arena, GradSlots, ReplayError, Tape};
use crate::ops::Op;
use crate::tensor::Element;
use seq_macro::seq;

/// Forward bits: input `a` (`b`) is the previous step's node.
const A_PREV: u8 = 1;
const B_PREV: u8 = 1 << 1;
/// Forward bits: the local derivative for input `a` (`b`) is kept in
/// `partials`. One that is exactly one (an addition's) is not: the walk
/// knows it from the step's kind. Partials are kept one after another,
/// so a chain of unary ops (W1's `tanh`) keeps one number a step, not two.
const KEEP_A: u8 = 1 << 2;
const KEEP_B: u8 = 1 << 3;

/// How many partials a step with forward bits `bits` keeps.
fn kept(bits: u8) -> usize {
    (bits & KEEP_A != 0) as usize + (bits & KEEP_B != 0) as usize
}

/// Backward bits, per step, for one output: a step's *kind*. The walk
/// runs one specialised copy of [`step`] per kind (a jump table), so a
/// step does only its own work, with no test of a bit it does not have.
/// Input `a` (`b`) needs a gradient: pass it a contribution. A step with
/// neither is one the walk does not reach, or passes nothing back.
const USE_A: u8 = 1;
const USE_B: u8 = 1 << 1;
/// The contribution is the first its input gets: it starts the slot.
const FIRST_A: u8 = 1 << 2;
const FIRST_B: u8 = 1 << 3;
/// Keep input `b`'s new gradient (else `a`'s) for the next live step.
const HOLD_B: u8 = 1 << 4;
/// This step's global derivative is what the previous live step kept.
const G_PREV: u8 = 1 << 5;
/// The local derivative for input `a` (`b`) is exactly one (an
/// addition's), and not kept: the contribution is the global derivative
/// itself, with no multiply on the walk's chain of dependent operations.
/// Set on every step, reached or not, for the walk to find the partials
/// of the steps below (a unary op's `b` has none either way).
const UNIT_A: u8 = 1 << 6;
const UNIT_B: u8 = 1 << 7;

/// The compiled program of a tape's first `len` nodes.
pub(crate) struct Program<T: Element> {
    /// Nodes compiled (all replayable) and the records among them.
    len: usize,
    records: usize,
    /// One step per op node, in record order: its node, inputs (a unary
    /// op's second is its first), op and forward bits.
    nodes: Vec<u32>,
    ins: Vec<[u32; 2]>,
    ops: Vec<Op>,
    forward: Vec<u8>,
    /// How many local derivatives the steps keep (`KEEP_A`, `KEEP_B`).
    kept: usize,
    /// The steps' kept local derivatives, one after another, as the last
    /// replay computed them.
    partials: Vec<T>,
    /// Whether `partials` are those of the nodes' present values (a
    /// replay ran and no leaf changed since).
    current: bool,
    plan: Plan,
}

impl<T: Element> Default for Program<T> {
    fn default() -> Self {
        Program {
            len: 0,
            records: 0,
            nodes: Vec::new(),
            ins: Vec::new(),
            ops: Vec::new(),
            forward: Vec::new(),
            kept: 0,
            partials: Vec::new(),
            current: false,
            plan: Plan::default(),
        }
    }
}

/// The backward walk from one output, worked out once.
#[derive(Default)]
struct Plan {
    /// The output, and the program length the plan was made for.
    root: Option<(usize, usize)>,
    /// Each step's kind, for the steps whose node is at most `root`.
    kinds: Vec<u8>,
    /// How many partials those steps keep: where the walk starts.
    kept_below: usize,
    /// Which nodes end the walk with a gradient (`GradSlots::reached`).
    reached: Vec<bool>,
    /// Scalar leaves that need a gradient the output does not depend on:
    /// they get zero.
    zero_leaves: Vec<u32>,
}

impl<T: Element> Program<T> {
    /// Forgets the program (a reset), keeping the storage.
    pub(crate) fn clear(&mut self) {
        self.len = 0;
        self.records = 0;
        self.nodes.clear();
        self.ins.clear();
        self.ops.clear();
        self.forward.clear();
        self.kept = 0;
        self.current = false;
        self.plan.root = None;
    }

    /// A leaf was given a new value: the partials are out of date.
    pub(crate) fn stale(&mut self) {
        self.current = false;
    }

    /// Compiles the nodes recorded since the last call: every op node must
    /// be an elementwise op on scalars. On an error nothing is added.
    pub(crate) fn extend(&mut self, tape: &Tape<T>, arena: &Arena<T>) -> Result<(), ReplayError> {
        let (len, steps, records, kept) = (self.len, self.nodes.len(), self.records, self.kept);
        let result = self.extend_from(tape, arena);
        if result.is_err() {
            self.len = len;
            self.records = records;
            self.kept = kept;
            self.nodes.truncate(steps);
            self.ins.truncate(steps);
            self.ops.truncate(steps);
            self.forward.truncate(steps);
        }
        result
    }

    fn extend_from(&mut self, tape: &Tape<T>, arena: &Arena<T>) -> Result<(), ReplayError> {
        for i in self.len..arena.len() {
            let flags = arena.flags[i];
            if !flags.has_record() {
                continue;
            }
            let record = arena.records[self.records];
            self.records += 1;
            if flags.is_leaf() {
                continue;
            }
            if !flags.is_scalar_op()
                || record
                    .op
                    .scalar_forward_locals(tape, [T::one(); 2])
                    .is_none()
            {
                return Err(ReplayError::NotReplayable {
                    node: i,
                    op: record.op.name(),
                });
            }
            let [a, b] = record.ins;
            // A unary op reads its one input twice (the second local is 0).
            let b = if flags.arity() == 2 { b } else { a };
            let prev = self.nodes.last().copied();
            let bit = |j: u32, set: u8| if Some(j) == prev { set } else { 0 };
            let keep = |k: usize, set: u8| {
                if k < flags.arity() as usize && !record.op.unit_partial(k) {
                    set
                } else {
                    0
                }
            };
            let bits = bit(a, A_PREV) | bit(b, B_PREV) | keep(0, KEEP_A) | keep(1, KEEP_B);
            self.kept += kept(bits);
            self.forward.push(bits);
            self.nodes.push(i as u32);
            self.ins.push([a, b]);
            self.ops.push(record.op);
        }
        self.len = arena.len();
        Ok(())
    }

    /// Re-runs the forward of every step from the values in `values`
    /// (the leaves' new ones), in place, keeping each step's local
    /// derivatives that are not exactly one for the backward walk.
    pub(crate) fn run(&mut self, tape: &Tape<T>, values: &mut [T]) {
        let steps = self.nodes.len();
        self.partials.resize(self.kept, T::zero());
        let (ins, ops, forward) = (
            &self.ins[..steps],
            &self.ops[..steps],
            &self.forward[..steps],
        );
        let (nodes, partials) = (&self.nodes[..steps], &mut self.partials[..]);
        let mut last = T::zero();
        let mut p = 0;
        for k in 0..steps {
            let [a, b] = ins[k];
            let bits = forward[k];
            // The previous step's value from a register, not memory.
            let xa = if bits & A_PREV != 0 {
                last
            } else {
                values[a as usize]
            };
            let xb = if bits & B_PREV != 0 {
                last
            } else {
                values[b as usize]
            };
            let (y, [la, lb]) = ops[k]
                .scalar_forward_locals(tape, [xa, xb])
                .expect("compiled: every step has a scalar rule");
            values[nodes[k] as usize] = y;
            if bits & KEEP_A != 0 {
                partials[p] = la;
                p += 1;
            }
            if bits & KEEP_B != 0 {
                partials[p] = lb;
                p += 1;
            }
            last = y;
        }
        self.current = true;
    }

    /// Whether [`Program::walk`] can give the gradients from `root`: the
    /// partials are current and cover it.
    pub(crate) fn can_walk(&self, root: usize) -> bool {
        self.current && root < self.len
    }

    /// The backward walk from `root` with `seed`, on the kept partials:
    /// the same additions in the same order as the eager walk, so the
    /// same bits.
    pub(crate) fn walk(
        &mut self,
        arena: &Arena<T>,
        root: usize,
        seed: T,
        grads: &mut GradSlots<T>,
    ) {
        debug_assert!(self.can_walk(root));
        if self.plan.root != Some((root, self.len)) {
            self.make_plan(arena, root);
        }
        let plan = &self.plan;
        grads.reset_reached(&plan.reached, arena.tensors.len());
        let adj = &mut grads.scalar[..=root];
        for &leaf in &plan.zero_leaves {
            adj[leaf as usize] = T::zero();
        }
        adj[root] = seed;
        let (nodes, ins, partials) = (&self.nodes[..], &self.ins[..], &self.partials[..]);
        let mut held = T::zero();
        // Just past the partials of the steps below the walk's position.
        let mut p = plan.kept_below;
        for (k, &kind) in plan.kinds.iter().enumerate().rev() {
            held = seq!(K in 0..=255 {
                match kind {
                    #(K => step::<K, T>(held, k, nodes, ins, partials, &mut p, adj),)*
                }
            });
        }
        zero_unreached_tensor_leaves(arena, root, grads);
    }

    /// Works out the walk from `root`, as the eager walk would go: which
    /// steps it reaches, which contributions start a slot, which gradient
    /// each step can hand to the next in a register.
    fn make_plan(&mut self, arena: &Arena<T>, root: usize) {
        let plan = &mut self.plan;
        let flags = &arena.flags[..=root];
        let steps = self.nodes.partition_point(|&i| i as usize <= root);
        plan.kinds.clear();
        plan.kept_below = 0;
        for &bits in &self.forward[..steps] {
            let unit = |keep: u8, unit: u8| if bits & keep != 0 { 0 } else { unit };
            plan.kinds.push(unit(KEEP_A, UNIT_A) | unit(KEEP_B, UNIT_B));
            plan.kept_below += kept(bits);
        }
        plan.reached.clear();
        plan.reached.resize(root + 1, false);
        plan.zero_leaves.clear();
        let reached = &mut plan.reached;
        reached[root] = flags[root].requires_grad();
        // The input whose new gradient the last live step kept.
        let mut kept = None;
        for k in (0..steps).rev() {
            let i = self.nodes[k] as usize;
            if !reached[i] {
                continue;
            }
            let mut bits = plan.kinds[k];
            if kept == Some(i) {
                bits |= G_PREV;
            }
            let [a, b] = self.ins[k].map(|j| j as usize);
            let arity = arena.flags[i].arity();
            let mut uses = [(a, USE_A, FIRST_A), (b, USE_B, FIRST_B)].into_iter();
            for (j, used, first) in uses.by_ref().take(arity as usize) {
                if flags[j].requires_grad() {
                    bits |= used;
                    if !reached[j] {
                        bits |= first;
                        reached[j] = true;
                    }
                }
            }
            // Keep the later input (the next live step is the highest
            // node left); with a == b, b's write is the last.
            let (a_used, b_used) = (bits & USE_A != 0, bits & USE_B != 0);
            kept = if b_used && (!a_used || b >= a) {
                bits |= HOLD_B;
                Some(b)
            } else if a_used {
                Some(a)
            } else {
                None
            };
            plan.kinds[k] = bits;
        }
        for (i, f) in flags.iter().enumerate() {
            if f.is_leaf() && f.requires_grad() && !f.is_tensor() && !reached[i] {
                reached[i] = true;
                plan.zero_leaves.push(i as u32);
            }
        }
        plan.root = Some((root, self.len));
    }
}

/// One step of the replayed walk, of kind `KIND` (its bits known at
/// compile time): the step's global derivative `g` (from `held` or its
/// slot) times each used input's local derivative, added to that input's
/// slot or starting it. `p` is just past the step's kept partials, and
/// moves below them. Returns the gradient kept for the next step (`held`
/// itself past a step that passes nothing back).
#[inline(always)]
fn step<const KIND: u8, T: Element>(
    held: T,
    k: usize,
    nodes: &[u32],
    ins: &[[u32; 2]],
    partials: &[T],
    p: &mut usize,
    adj: &mut [T],
) -> T {
    // Kept as the forward wrote them: `a`'s, then `b`'s.
    let (mut pa, mut pb) = (T::one(), T::one());
    if KIND & UNIT_B == 0 {
        *p -= 1;
        if KIND & USE_B != 0 {
            pb = partials[*p];
        }
    }
    if KIND & UNIT_A == 0 {
        *p -= 1;
        if KIND & USE_A != 0 {
            pa = partials[*p];
        }
    }
    if KIND & (USE_A | USE_B) == 0 {
        return held;
    }
    // Loaded in the kinds that use them only: a chain's steps (W1's)
    // never read their node's slot.
    let g = if KIND & G_PREV != 0 {
        held
    } else {
        adj[nodes[k] as usize]
    };
    let [a, b] = ins[k];
    let (a, b) = (a as usize, b as usize);
    let (mut va, mut vb) = (T::zero(), T::zero());
    if KIND & USE_A != 0 {
        let c = if KIND & UNIT_A != 0 { g } else { g * pa };
        va = if KIND & FIRST_A != 0 { c } else { adj[a] + c };
        adj[a] = va;
    }
    if KIND & USE_B != 0 {
        let c = if KIND & UNIT_B != 0 { g } else { g * pb };
        vb = if KIND & FIRST_B != 0 { c } else { adj[b] + c };
        adj[b] = vb;
    }
    if KIND & HOLD_B != 0 {
        vb
    } else {
        va
    }
}
