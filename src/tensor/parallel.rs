//! Two-way fork-join on one helper thread that stays awake between jobs:
//! how large products and updates use the second core.
//!
//! Why not `rayon::join`: called from a thread outside rayon's pool (a
//! user's training loop), it posts the job, wakes a worker and puts the
//! caller to sleep until it is woken in turn. On the 2-vCPU machine that
//! round trip took 27–130 µs (median, by how long the pool had been idle),
//! longer than splitting a W2 medium product saves. Here the helper spins
//! for [`SPIN`] after each job, as OpenMP runtimes do, so the joins of a
//! training step hand over in about 0.3 µs; idle for longer, it parks, and
//! the next join wakes it (about 50 µs).
//!
//! One join runs at a time: a join from the helper itself, or from a second
//! thread while one is in flight, runs both halves on its own thread.
//!
//! The number of threads follows `TAPEGRAD_THREADS` (`1` keeps everything
//! on the calling thread); by default both halves run in parallel when the
//! machine has at least two cores.

use std::any::Any;
use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::*};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

/// How long the helper keeps spinning for the next job before it parks.
/// A W2 step's products and updates come closer together than this.
const SPIN: Duration = Duration::from_micros(200);

const IDLE: u8 = 0;
const POSTED: u8 = 1;
const DONE: u8 = 2;

/// A posted job: the caller's closure with its lifetime erased (see `join`).
type Job = *mut (dyn FnMut() + Send + 'static);

struct Helper {
    /// A caller owns the helper for the length of one join.
    claimed: AtomicBool,
    state: AtomicU8,
    /// Whether the helper is (about to be) parked and needs an unpark.
    sleeping: AtomicBool,
    job: UnsafeCell<Option<Job>>,
    panic: UnsafeCell<Option<Box<dyn Any + Send>>>,
    thread: OnceLock<Thread>,
}

// SAFETY: `job` and `panic` are written by the claiming caller before it
// posts (state POSTED) and by the helper before it reports DONE; each side
// reads them only after seeing the other's state change (acquire/release),
// and `claimed` keeps other callers out in between.
unsafe impl Sync for Helper {}

/// Whether joins run on two threads (read once).
pub(crate) fn two_threads() -> bool {
    helper().is_some()
}

fn helper() -> Option<&'static Helper> {
    static HELPER: OnceLock<Option<&'static Helper>> = OnceLock::new();
    *HELPER.get_or_init(|| {
        let threads = match std::env::var("TAPEGRAD_THREADS") {
            Ok(v) => v.trim().parse().unwrap_or(2),
            Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        if threads < 2 {
            return None;
        }
        let h: &'static Helper = Box::leak(Box::new(Helper {
            claimed: AtomicBool::new(false),
            state: AtomicU8::new(IDLE),
            sleeping: AtomicBool::new(false),
            job: UnsafeCell::new(None),
            panic: UnsafeCell::new(None),
            thread: OnceLock::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("tapegrad-helper".into())
            .spawn(move || h.serve());
        let thread = spawned.ok()?.thread().clone();
        h.thread.set(thread).ok()?;
        Some(h)
    })
}

impl Helper {
    /// The helper thread's loop: wait for a job, run it, report.
    fn serve(&self) -> ! {
        loop {
            self.wait_for_job();
            // SAFETY: the poster wrote `job` before its POSTED store, which
            // `wait_for_job` has seen; the closure stays alive until DONE.
            let job = unsafe { (*self.job.get()).take() }.expect("a posted job");
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| unsafe { (*job)() })) {
                // SAFETY: the caller reads `panic` only after DONE.
                unsafe { *self.panic.get() = Some(p) };
            }
            self.state.store(DONE, Release);
        }
    }

    fn wait_for_job(&self) {
        let start = Instant::now();
        let mut spins = 0u32;
        while self.state.load(Acquire) != POSTED {
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) || start.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            // Sleeping is announced before the last look at `state`; a
            // poster stores POSTED before it looks at `sleeping` (both
            // SeqCst), so one of the two always sees the other.
            self.sleeping.store(true, SeqCst);
            if self.state.load(SeqCst) != POSTED {
                std::thread::park();
            }
            self.sleeping.store(false, SeqCst);
        }
    }

    fn post(&self, job: Job) {
        // SAFETY: this caller holds the claim and the helper is IDLE.
        unsafe { *self.job.get() = Some(job) };
        self.state.store(POSTED, SeqCst);
        if self.sleeping.load(SeqCst) {
            if let Some(t) = self.thread.get() {
                t.unpark();
            }
        }
    }
}

/// Waits for the posted job in `drop`, so that the caller's frame (which
/// the job borrows) cannot end first, even when the caller's own half
/// panics.
struct Joined<'h>(&'h Helper);

impl Joined<'_> {
    /// Waits, then hands back the job's panic, if it had one.
    fn finish(self) -> Option<Box<dyn Any + Send>> {
        self.wait();
        // SAFETY: the helper wrote `panic` before DONE, which `wait` saw.
        let panic = unsafe { (*self.0.panic.get()).take() };
        drop(self);
        panic
    }

    fn wait(&self) {
        while self.0.state.load(Acquire) != DONE {
            std::hint::spin_loop();
        }
    }
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        self.wait();
        // A panic `finish` did not collect (the caller's half panicked too)
        // must not surface in the next join.
        // SAFETY: as in `finish`.
        drop(unsafe { (*self.0.panic.get()).take() });
        self.0.state.store(IDLE, Relaxed);
        self.0.claimed.store(false, Release);
    }
}

/// Runs `a` on this thread and `b` on the helper, and returns when both
/// are done (`a`'s result). Without a free helper, runs `a` then `b` here.
/// A panic in either half is resumed here after both have finished.
pub(crate) fn join<R>(a: impl FnOnce() -> R, b: impl FnOnce() + Send) -> R {
    let claimed = helper().filter(|h| {
        h.claimed
            .compare_exchange(false, true, Acquire, Relaxed)
            .is_ok()
    });
    let Some(h) = claimed else {
        let r = a();
        b();
        return r;
    };
    let mut b = Some(b);
    let mut call = move || {
        if let Some(b) = b.take() {
            b()
        }
    };
    let job: &mut (dyn FnMut() + Send + '_) = &mut call;
    // SAFETY: only the lifetime is erased. `joined` waits for the helper to
    // finish with the job before this frame can end (also on unwinding), so
    // the closure and what it borrows outlive every use of the pointer.
    let job: Job = unsafe { std::mem::transmute(job) };
    h.post(job);
    let joined = Joined(h);
    let r = a();
    if let Some(p) = joined.finish() {
        resume_unwind(p);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_halves_run_and_see_their_own_data() {
        for round in 0..1000u64 {
            let mut left = vec![0u64; 64];
            let mut right = vec![0u64; 64];
            let r = join(
                || {
                    left.iter_mut().for_each(|x| *x = round);
                    round + 1
                },
                || right.iter_mut().for_each(|x| *x = 2 * round),
            );
            assert_eq!(r, round + 1);
            assert!(left.iter().all(|&x| x == round));
            assert!(right.iter().all(|&x| x == 2 * round));
        }
    }

    #[test]
    fn a_panic_on_the_helper_reaches_the_caller_and_the_helper_survives() {
        let err = catch_unwind(|| join(|| 1, || panic!("boom in b"))).expect_err("b panicked");
        assert_eq!(err.downcast_ref::<&str>(), Some(&"boom in b"));
        let mut seen = false;
        join(|| (), || seen = true);
        assert!(seen, "the helper still serves after a panic");
    }

    #[test]
    fn a_panic_in_the_callers_half_waits_for_the_other() {
        // Other tests may hold the helper (then both halves run here, and
        // `b` never starts after `a` panics): try until `b` ran on it.
        for _ in 0..1000 {
            let (started, done) = (AtomicBool::new(false), AtomicBool::new(false));
            let err = catch_unwind(AssertUnwindSafe(|| {
                join(
                    || panic!("boom in a"),
                    || {
                        started.store(true, SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        done.store(true, SeqCst);
                    },
                )
            }));
            assert!(err.is_err());
            if started.load(SeqCst) {
                assert!(
                    done.load(SeqCst),
                    "join unwound before its other half ended"
                );
                return;
            }
        }
        panic!("the helper never took the other half");
    }

    #[test]
    fn nested_and_concurrent_joins_fall_back_to_one_thread() {
        let inner = || join(|| 1, || ()) + join(|| 2, || ());
        let (x, y) = std::thread::scope(|s| {
            let t = s.spawn(|| (0..200).map(|_| join(inner, || ())).sum::<i32>());
            let here = (0..200).map(|_| join(inner, || ())).sum::<i32>();
            (here, t.join().unwrap())
        });
        assert_eq!((x, y), (600, 600));
    }
}
