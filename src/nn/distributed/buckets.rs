//! Gradient buckets: which parameters share one all-reduce, and the
//! reductions in flight while the backward walk runs.

use super::MpiElement;
use crate::nn::ParamId;
use mpi::collective::SystemOperation;
use mpi::request::{LocalScope, Request};
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::time::{Duration, Instant};

/// One parameter's place in its bucket's flat buffer.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    pub(crate) id: ParamId,
    pub(crate) offset: usize,
    pub(crate) len: usize,
}

impl Member {
    /// Where its gradient sits in the bucket's buffer.
    pub(crate) fn span(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// Parameters whose gradients are reduced by one all-reduce call.
#[derive(Clone, Debug, Default)]
pub(crate) struct Bucket {
    pub(crate) members: Vec<Member>,
    pub(crate) len: usize,
}

/// Puts parameters into buckets in the order given (the reverse of the
/// order they are used in, so the first bucket's gradients are the first
/// to be final): a bucket is closed when the next parameter would take it
/// past `first_cap` bytes (the first bucket) or `cap` (the others), so a
/// small first bucket starts communicating early, as in PyTorch. A
/// parameter larger than the cap has a bucket of its own.
pub(crate) fn assign(
    sizes: impl IntoIterator<Item = (ParamId, usize)>,
    elem_bytes: usize,
    first_cap: usize,
    cap: usize,
) -> Vec<Bucket> {
    let mut buckets = vec![Bucket::default()];
    for (id, len) in sizes {
        let limit = if buckets.len() == 1 { first_cap } else { cap };
        let current = buckets.last().expect("at least one bucket");
        if !current.members.is_empty() && (current.len + len) * elem_bytes > limit {
            buckets.push(Bucket::default());
        }
        let b = buckets.last_mut().expect("at least one bucket");
        b.members.push(Member {
            id,
            offset: b.len,
            len,
        });
        b.len += len;
    }
    buckets.retain(|b| !b.members.is_empty());
    buckets
}

/// When one bucket's all-reduce started and was seen to finish, from the
/// start of the backward pass.
#[derive(Clone, Debug, Default)]
pub struct BucketTiming {
    /// Bytes this process sent for it.
    pub bytes: usize,
    /// When the all-reduce was started.
    pub started: Duration,
    /// When it was seen complete (an upper bound: completion is noticed
    /// when the walk polls, or at the final wait).
    pub finished: Duration,
}

/// The timeline of one [`DataParallel::backward`](super::DataParallel::backward).
#[derive(Clone, Debug, Default)]
pub struct StepTiming {
    /// When the backward walk ended.
    pub backward: Duration,
    /// When every reduction had finished and the gradients were written.
    pub total: Duration,
    /// Each bucket, in reduction order.
    pub buckets: Vec<BucketTiming>,
}

impl StepTiming {
    /// Bytes this process sent in all-reduces this step.
    pub fn bytes(&self) -> usize {
        self.buckets.iter().map(|b| b.bytes).sum()
    }

    /// The share of all-reduce time that ran while the backward walk was
    /// still going: 1 when communication hides entirely behind backward,
    /// 0 when it all comes after.
    pub fn hidden_fraction(&self) -> f64 {
        let (mut hidden, mut total) = (0.0, 0.0);
        for b in &self.buckets {
            let span = b.finished.saturating_sub(b.started).as_secs_f64();
            let before_end = b.finished.min(self.backward).saturating_sub(b.started);
            hidden += before_end.as_secs_f64();
            total += span;
        }
        if total > 0.0 {
            hidden / total
        } else {
            0.0
        }
    }
}

/// The all-reduces of one backward pass. Buckets are started strictly in
/// bucket order (a bucket that is ready waits for the ones before it), so
/// every process issues the same collective calls in the same order
/// whatever order its gradients became final in.
pub(crate) struct InFlight<'a, 's, 'c, T: MpiElement> {
    comm: &'c SimpleCommunicator,
    scope: &'s LocalScope<'a>,
    sends: Vec<Option<&'a mut [T]>>,
    recvs: Vec<Option<&'a mut [T]>>,
    requests: Vec<Option<Request<'a, [T], &'s LocalScope<'a>>>>,
    ready: Vec<bool>,
    next: usize,
    start: Instant,
    pub(crate) timing: Vec<BucketTiming>,
}

impl<'a, 's, 'c, T: MpiElement> InFlight<'a, 's, 'c, T> {
    pub(crate) fn new(
        comm: &'c SimpleCommunicator,
        scope: &'s LocalScope<'a>,
        sends: &'a mut [Vec<T>],
        recvs: &'a mut [Vec<T>],
        start: Instant,
    ) -> Self {
        let n = sends.len();
        InFlight {
            comm,
            scope,
            timing: sends
                .iter()
                .map(|s| BucketTiming {
                    bytes: std::mem::size_of_val(&s[..]),
                    ..BucketTiming::default()
                })
                .collect(),
            sends: sends.iter_mut().map(|s| Some(&mut s[..])).collect(),
            recvs: recvs.iter_mut().map(|r| Some(&mut r[..])).collect(),
            requests: (0..n).map(|_| None).collect(),
            ready: vec![false; n],
            next: 0,
            start,
        }
    }

    /// Writes a final gradient into its bucket's send buffer.
    pub(crate) fn fill(&mut self, bucket: usize, offset: usize, data: &[T]) {
        let send = self.sends[bucket]
            .as_mut()
            .expect("a bucket is started only once all its gradients are in");
        send[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Marks a bucket complete and starts every bucket that may start.
    pub(crate) fn ready(&mut self, bucket: usize) {
        self.ready[bucket] = true;
        while self.next < self.ready.len() && self.ready[self.next] {
            self.launch(self.next);
            self.next += 1;
        }
    }

    fn launch(&mut self, b: usize) {
        let send: &'a [T] = self.sends[b].take().expect("started once");
        let recv = self.recvs[b].take().expect("started once");
        self.timing[b].started = self.start.elapsed();
        self.requests[b] = Some(self.comm.immediate_all_reduce_into(
            self.scope,
            send,
            recv,
            SystemOperation::sum(),
        ));
    }

    /// Lets MPI progress the reductions started so far (Open MPI advances
    /// non-blocking collectives only inside MPI calls), noting those done.
    pub(crate) fn poll(&mut self) {
        for b in 0..self.next {
            if let Some(r) = self.requests[b].take() {
                match r.test() {
                    Ok(_) => self.timing[b].finished = self.start.elapsed(),
                    Err(r) => self.requests[b] = Some(r),
                }
            }
        }
    }

    /// Starts what is left, in order, and waits for everything.
    pub(crate) fn finish(mut self) -> Vec<BucketTiming> {
        for b in 0..self.ready.len() {
            self.ready(b);
        }
        for b in 0..self.requests.len() {
            if let Some(r) = self.requests[b].take() {
                r.wait();
                self.timing[b].finished = self.start.elapsed();
            }
        }
        self.timing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slotmap::SlotMap;

    #[test]
    fn buckets_follow_the_order_given_and_the_caps() {
        let mut ids = SlotMap::<ParamId, ()>::with_key();
        let p: Vec<ParamId> = (0..5).map(|_| ids.insert(())).collect();
        // f64: 8 bytes; first cap 100 bytes (12 elements), then 200 (25).
        let sizes = [(p[4], 10), (p[3], 5), (p[2], 20), (p[1], 40), (p[0], 1)];
        let b = assign(sizes, 8, 100, 200);
        let names: Vec<Vec<ParamId>> = b
            .iter()
            .map(|b| b.members.iter().map(|m| m.id).collect())
            .collect();
        assert_eq!(
            names,
            [vec![p[4]], vec![p[3], p[2]], vec![p[1]], vec![p[0]]]
        );
        assert_eq!(b[1].members[1].offset, 5);
        assert_eq!(b[1].len, 25);
        // One bucket when the cap is large.
        assert_eq!(assign(sizes, 8, 1 << 30, 1 << 30).len(), 1);
    }

    #[test]
    fn hidden_fraction_counts_the_time_before_backward_ended() {
        let ms = Duration::from_millis;
        let t = StepTiming {
            backward: ms(10),
            total: ms(14),
            buckets: vec![
                BucketTiming {
                    bytes: 8,
                    started: ms(2),
                    finished: ms(6),
                },
                BucketTiming {
                    bytes: 8,
                    started: ms(8),
                    finished: ms(14),
                },
            ],
        };
        assert_eq!(t.bytes(), 16);
        assert!((t.hidden_fraction() - 6.0 / 10.0).abs() < 1e-12);
    }
}
