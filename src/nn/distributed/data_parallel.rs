//! [`DataParallel`]: gradients summed over processes in buckets, started
//! while the backward walk is still running.

use super::buckets::{assign, Bucket, InFlight, StepTiming};
use super::{DistError, Fnv, MpiElement, World};
use crate::nn::{GradAccumulator, ParamId, ParamStore};
use crate::tape::{Gradients, Var};
use crate::tensor::Tensor;
use mpi::collective::SystemOperation;
use mpi::traits::*;
use std::collections::HashMap;
use std::time::Instant;

/// How the processes' gradients are combined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Combine {
    /// Their mean (PyTorch's default): with equal local batches and a
    /// mean loss on each, the gradient of the mean loss over the union.
    #[default]
    Mean,
    /// Their sum: for losses each process already divided by the global
    /// batch size (the way to get the union's gradient when the local
    /// batches differ in size, as [`crate::data::ShardedBatches`] makes
    /// them when the batch does not divide evenly).
    Sum,
}

/// First bucket: small, so communication starts early in the backward
/// pass (PyTorch's 1 MiB).
const FIRST_BUCKET_BYTES: usize = 1 << 20;
/// The other buckets (PyTorch's 25 MiB): large enough that each call's
/// latency is small beside its transfer, small enough to overlap.
const BUCKET_BYTES: usize = 25 << 20;

/// Data-parallel training of one [`ParamStore`] over the processes of a
/// [`World`]: every process runs the same model on its own part of the
/// batch, and [`DataParallel::backward`] returns the gradients combined
/// over all processes, so every process's optimizer takes the same step.
///
/// - [`DataParallel::new`] checks that every process has the same
///   parameter and buffer names and shapes (a clear error on every
///   process, not a hang) and gives every process process 0's values.
/// - Trainable parameters are put into buckets (about 25 MiB, the first
///   1 MiB) in the reverse of the order they were added, which is about
///   the order their gradients become final in the backward walk. A
///   bucket's all-reduce starts as soon as its last gradient is final
///   ([`Var::backward_with_hook`]), so communication overlaps the rest of
///   the walk; buckets start in the same order on every process.
/// - For gradient accumulation without communication (PyTorch's
///   `no_sync`), add the micro-batches' local gradients to a
///   [`GradAccumulator`] and reduce it once with
///   [`DataParallel::all_reduce`].
///
/// Every process must use the same trainable parameters in each forward;
/// a parameter that one process left out but another used is an error
/// (its update would differ between processes).
pub struct DataParallel<'w, T: MpiElement> {
    world: &'w World,
    store: u64,
    trainable: Vec<ParamId>,
    /// Trainable parameters in bucket order, with their sizes.
    order: Vec<(ParamId, usize)>,
    buckets: Vec<Bucket>,
    send: Vec<Vec<T>>,
    recv: Vec<Vec<T>>,
    combine: Combine,
    overlap: bool,
    last: StepTiming,
    /// Whether every process was seen to use the same buckets and
    /// combination (checked at the first reduction).
    layout_checked: bool,
}

impl<'w, T: MpiElement> DataParallel<'w, T> {
    /// Checks that every process holds the same model, then gives every
    /// process process 0's parameter and buffer values.
    ///
    /// # Errors
    /// [`DistError::ModelMismatch`] on every process if the processes'
    /// parameters or buffers differ in number, name, shape or frozen
    /// state (the message names the first difference).
    pub fn new(world: &'w World, params: &mut ParamStore<T>) -> Result<Self, DistError> {
        check_same_model(world, params)?;
        broadcast_from_root(world, params);
        let trainable: Vec<ParamId> = params.trainable().collect();
        let order = trainable
            .iter()
            .rev()
            .map(|&id| (id, params.value(id).numel()))
            .collect();
        let mut ddp = DataParallel {
            world,
            store: params.key_store(),
            trainable,
            order,
            buckets: Vec::new(),
            send: Vec::new(),
            recv: Vec::new(),
            combine: Combine::Mean,
            overlap: true,
            last: StepTiming::default(),
            layout_checked: false,
        };
        ddp.rebucket(FIRST_BUCKET_BYTES, BUCKET_BYTES);
        Ok(ddp)
    }

    /// Bucket sizes in bytes: the first bucket, then the others (defaults
    /// 1 MiB and 25 MiB). Every process must choose the same.
    ///
    /// # Panics
    /// If either is 0.
    #[track_caller]
    pub fn bucket_bytes(mut self, first: usize, rest: usize) -> Self {
        assert!(
            first > 0 && rest > 0,
            "DataParallel::bucket_bytes: sizes must be positive, got {first} and {rest}"
        );
        self.rebucket(first, rest);
        self.layout_checked = false;
        self
    }

    /// How gradients are combined (default [`Combine::Mean`]).
    pub fn combine(mut self, combine: Combine) -> Self {
        self.combine = combine;
        self.layout_checked = false;
        self
    }

    /// Whether buckets start during the backward walk (default) or all
    /// after it: the results are the same; only the overlap differs.
    pub fn overlap(mut self, overlap: bool) -> Self {
        self.overlap = overlap;
        self
    }

    /// The number of buckets.
    pub fn num_buckets(&self) -> usize {
        self.buckets.len()
    }

    /// The timeline of the last [`DataParallel::backward`]: bytes sent
    /// and how much of the communication hid behind the walk.
    pub fn last_timing(&self) -> &StepTiming {
        &self.last
    }

    fn rebucket(&mut self, first: usize, rest: usize) {
        let elem = std::mem::size_of::<T>();
        self.buckets = assign(self.order.iter().copied(), elem, first, rest);
        self.send = self
            .buckets
            .iter()
            .map(|b| vec![T::zero(); b.len])
            .collect();
        self.recv = self.send.clone();
    }

    /// The gradients of `loss` (a scalar on this process's part of the
    /// batch), combined over all processes: the backward walk runs as
    /// [`Var::backward`] does, and each bucket's all-reduce starts as soon
    /// as its gradients are final.
    ///
    /// # Panics
    /// If `params` is not the store this was built with or its trainable
    /// set changed since; if a parameter this process did not use got a
    /// gradient on another process; as [`Var::backward`].
    #[track_caller]
    pub fn backward<'t>(&mut self, params: &ParamStore<T>, loss: Var<'t, T>) -> Gradients<'t, T> {
        self.check(params, "backward");
        let tape = loss.tape();
        // Where each trainable parameter sits on this recording.
        let mut slot_of: HashMap<usize, (usize, usize)> = HashMap::new();
        let mut pending = vec![0usize; self.buckets.len()];
        for (b, bucket) in self.buckets.iter().enumerate() {
            for (m, member) in bucket.members.iter().enumerate() {
                if let Some(bound) = tape.bound(params.key(member.id).tape_key()) {
                    if bound.requires_grad {
                        slot_of.insert(bound.index as usize, (b, m));
                        pending[b] += 1;
                    }
                }
            }
        }
        // Parameters not reached contribute zeros.
        for s in &mut self.send {
            s.fill(T::zero());
        }
        let start = Instant::now();
        let comm = self.world.comm();
        let (buckets, overlap) = (&self.buckets, self.overlap);
        let (send, recv) = (&mut self.send[..], &mut self.recv[..]);
        let (grads, timing, backward) = mpi::request::scope(|scope| {
            let mut flight = InFlight::new(comm, scope, send, recv, start);
            let grads = loss.backward_with_hook(|leaf, g| {
                if let Some(&(b, m)) = slot_of.get(&leaf.index()) {
                    let member = &buckets[b].members[m];
                    assert_eq!(
                        g.numel(),
                        member.len,
                        "DataParallel::backward: a parameter changed size since DataParallel::new"
                    );
                    flight.fill(b, member.offset, g.data());
                    pending[b] -= 1;
                    if pending[b] == 0 && overlap {
                        flight.ready(b);
                    }
                }
                if overlap {
                    flight.poll();
                }
            });
            let backward = start.elapsed();
            (grads, flight.finish(), backward)
        });
        let mut grads = grads;
        for (b, bucket) in self.buckets.iter().enumerate() {
            for member in &bucket.members {
                let reduced = &self.recv[b][member.span()];
                let here = params.grad_mut(&mut grads, member.id);
                write_combined(
                    params,
                    member.id,
                    reduced,
                    here,
                    self.combine,
                    self.world.size(),
                );
            }
        }
        self.last = StepTiming {
            backward,
            total: start.elapsed(),
            buckets: timing,
        };
        grads
    }

    /// Combines the gradients summed in `acc` over all processes, in place
    /// (after micro-batches accumulated locally without communication, as
    /// PyTorch's `no_sync`), with the same buckets and combination as
    /// [`DataParallel::backward`]. Then step with `acc`.
    ///
    /// # Panics
    /// As [`DataParallel::backward`].
    #[track_caller]
    pub fn all_reduce(&mut self, params: &ParamStore<T>, acc: &mut GradAccumulator<T>) {
        self.check(params, "all_reduce");
        let comm = self.world.comm();
        for (b, bucket) in self.buckets.iter().enumerate() {
            let send = &mut self.send[b];
            send.fill(T::zero());
            for m in &bucket.members {
                if let Some(g) = acc.get(m.id) {
                    send[m.span()].copy_from_slice(g.data());
                }
            }
            comm.all_reduce_into(&send[..], &mut self.recv[b][..], SystemOperation::sum());
            for m in &bucket.members {
                let reduced = &self.recv[b][m.span()];
                write_combined(
                    params,
                    m.id,
                    reduced,
                    acc.get_mut(m.id),
                    self.combine,
                    self.world.size(),
                );
            }
        }
    }

    /// That `params` is the store this was built with, with the same
    /// trainable parameters; and once, before the first reduction, that
    /// every process reduces the same buckets with the same combination,
    /// or the collective calls would not match (a hang or garbage).
    #[track_caller]
    fn check(&mut self, params: &ParamStore<T>, op: &str) {
        self.check_store(params, op);
        if self.layout_checked {
            return;
        }
        let mut h = Fnv::new();
        h.bytes(&[self.combine as u8]);
        for b in &self.buckets {
            h.bytes(&(b.len as u64).to_le_bytes());
        }
        let all = self.world.gather_u64(h.0);
        assert!(
            all.iter().all(|&x| x == all[0]),
            "DataParallel::{op}: the processes chose different bucket sizes or Combine modes; \
             configure DataParallel the same way on every process"
        );
        self.layout_checked = true;
    }

    #[track_caller]
    fn check_store(&self, params: &ParamStore<T>, op: &str) {
        assert!(
            params.key_store() == self.store,
            "DataParallel::{op}: these parameters are not the ParamStore this DataParallel was built with"
        );
        assert!(
            params.trainable().eq(self.trainable.iter().copied()),
            "DataParallel::{op}: the trainable parameters changed since DataParallel::new (a freeze, \
             unfreeze or new parameter); build the DataParallel again, on every process"
        );
    }
}

/// Writes a reduced gradient into this process's, combined as asked; a
/// parameter this process has no gradient for must have reduced to zero.
#[track_caller]
fn write_combined<T: MpiElement>(
    params: &ParamStore<T>,
    id: ParamId,
    reduced: &[T],
    here: Option<&mut Tensor<T>>,
    combine: Combine,
    world: usize,
) {
    let n = T::lit(world as f64);
    match here {
        Some(g) => {
            let out = g.data_mut();
            match combine {
                Combine::Mean => out.iter_mut().zip(reduced).for_each(|(o, &r)| *o = r / n),
                Combine::Sum => out.copy_from_slice(reduced),
            }
        }
        None => assert!(
            reduced.iter().all(|v| *v == T::zero()),
            "DataParallel: parameter `{}` was not used in this process's forward, but another \
             process computed a gradient for it; every process must use the same parameters \
             in each step",
            params.name(id)
        ),
    }
}

/// Every process's parameters and buffers, compared by name, shape and
/// frozen state: a mismatch is the same error on every process.
fn check_same_model<T: MpiElement>(world: &World, params: &ParamStore<T>) -> Result<(), DistError> {
    let frozen = |id| {
        if params.is_frozen(id) {
            " (frozen)"
        } else {
            ""
        }
    };
    let entries: Vec<String> = params
        .iter()
        .map(|(id, name, value)| format!("parameter `{name}` {:?}{}", value.shape(), frozen(id)))
        .chain(
            params
                .buffer_names()
                .map(|(id, name)| format!("buffer `{name}` {:?}", params.buffer(id).shape())),
        )
        .collect();
    let counts = world.gather_u64(entries.len() as u64);
    if let Some(k) = counts.iter().position(|&c| c != counts[0]) {
        return Err(DistError::ModelMismatch(format!(
            "process {k} has {} parameters and buffers, process 0 has {}",
            counts[k], counts[0]
        )));
    }
    let mine: Vec<u64> = entries
        .iter()
        .map(|what| {
            let mut h = Fnv::new();
            h.bytes(what.as_bytes());
            h.0
        })
        .collect();
    let mut all = vec![0u64; mine.len() * world.size()];
    world.comm().all_gather_into(&mine[..], &mut all[..]);
    let n = mine.len();
    for i in 0..n {
        if let Some(k) = (0..world.size()).find(|&k| all[k * n + i] != all[i]) {
            // Process 0's description, so every process reports the same.
            let theirs = world.broadcast_string(entries[i].clone());
            return Err(DistError::ModelMismatch(format!(
                "entry {i} differs: process 0 has {theirs}, process {k} has something else \
                 (this process, {}, has {})",
                world.rank(),
                entries[i]
            )));
        }
    }
    Ok(())
}

/// Process 0's parameter and buffer values on every process.
fn broadcast_from_root<T: MpiElement>(world: &World, params: &mut ParamStore<T>) {
    let root = world.comm().process_at_rank(0);
    let ids: Vec<ParamId> = params.iter().map(|(id, _, _)| id).collect();
    for id in ids {
        root.broadcast_into(params.value_mut(id).data_mut());
    }
    let buffers: Vec<_> = params.buffer_names().map(|(id, _)| id).collect();
    for id in buffers {
        let mut value = params.buffer(id).clone();
        root.broadcast_into(value.data_mut());
        params.set_buffer(id, value);
    }
}
