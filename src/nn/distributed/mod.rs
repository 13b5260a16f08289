//! Data-parallel training on several processes over MPI (cargo feature
//! `mpi`): every process holds the whole model, trains on its own part of
//! each global batch ([`crate::data::ShardedBatches`]), and the gradients
//! are summed over processes before each step, so every process takes the
//! same step and the parameters stay identical.
//!
//! - [`World`] starts MPI, says which process this is, and turns a panic
//!   on any process into the end of the whole job (no process waits
//!   forever for one that died).
//! - [`DataParallel`] broadcasts process 0's parameters, checks that every
//!   process has the same model, and reduces gradients in buckets while
//!   the backward walk is still running (PyTorch's
//!   `DistributedDataParallel`).
//!
//! Run a program that uses it with `mpirun -np 2 target/release/examples/mnist_ddp`;
//! docs/distributed.md says how it works and how to run it on several
//! machines.
//!
//! ```no_run
//! use tapegrad::data::ShardedBatches;
//! use tapegrad::nn::distributed::{DataParallel, World};
//! use tapegrad::nn::{mse, Linear, Module, Optimizer, ParamStore, Sgd};
//! use tapegrad::{Tape, Tensor};
//!
//! let world = World::init()?;
//! let mut params = ParamStore::<f64>::new();
//! let model = Linear::new(&mut params, "lin", 3, 1, 1);
//! let mut ddp = DataParallel::new(&world, &mut params)?;
//! let (x, y) = (Tensor::randn([64, 3], 2), Tensor::randn([64, 1], 3));
//! let mut opt = Sgd::new(0.1);
//! let tape = Tape::new();
//! let batches = ShardedBatches::new(64, 16, 7, world.size(), world.rank());
//! for idx in batches.epoch(0) {
//!     tape.reset();
//!     let out = model.forward(&params, tape.constant(x.rows(&idx)));
//!     let loss = mse(out, tape.constant(y.rows(&idx)));
//!     let grads = ddp.backward(&params, loss); // the mean over processes
//!     opt.step(&mut params, &grads);
//! }
//! assert!(world.agree(&params)); // the same parameters everywhere
//! # Ok::<(), tapegrad::nn::distributed::DistError>(())
//! ```

mod buckets;
mod data_parallel;

pub use buckets::{BucketTiming, StepTiming};
pub use data_parallel::{Combine, DataParallel};

use crate::nn::ParamStore;
use crate::tensor::Element;
use mpi::collective::SystemOperation;
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;
use mpi::Threading;
use std::path::Path;

/// An element type MPI can send and sum: `f32` and `f64`.
pub trait MpiElement: Element + Equivalence {}
impl MpiElement for f32 {}
impl MpiElement for f64 {}

/// What went wrong setting up or running data-parallel training. Every
/// process gets the same error, so none is left waiting.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// MPI was started already in this process (only one [`World`]).
    #[error("MPI is initialised already in this process: make one World and pass it around")]
    AlreadyInitialised,
    /// The processes do not hold the same model.
    #[error("the processes do not hold the same model: {0}")]
    ModelMismatch(String),
    /// Saving on process 0 failed (every process returns this).
    #[error("saving on process 0 failed: {0}")]
    Save(String),
}

/// The MPI job this process is part of: its rank (0-based) among `size`
/// processes. Dropping it finalises MPI.
///
/// [`World::init`] also installs a panic hook: a panic on any process
/// prints its message and then aborts the whole job (`MPI_Abort`), so no
/// other process hangs waiting for the dead one in a collective call. It
/// aborts on every panic, also one a caller would catch with
/// `catch_unwind`: after a panic part-way through a step, the processes
/// can no longer be known to be in step.
pub struct World {
    comm: SimpleCommunicator,
    // Finalises MPI when the world is dropped (after `comm`).
    _universe: Universe,
}

impl World {
    /// Starts MPI (threads may run, but only the calling thread talks to
    /// MPI) and installs the abort-on-panic hook.
    ///
    /// # Errors
    /// If MPI was initialised already in this process.
    pub fn init() -> Result<World, DistError> {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .ok_or(DistError::AlreadyInitialised)?;
        let comm = universe.world();
        let (rank, size) = (comm.rank(), comm.size());
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            if size > 1 {
                eprintln!("process {rank} of {size} panicked: aborting the MPI job");
            }
            SimpleCommunicator::world().abort(101);
        }));
        Ok(World {
            comm,
            _universe: universe,
        })
    }

    /// This process's rank, `0..size()`.
    pub fn rank(&self) -> usize {
        self.comm.rank() as usize
    }

    /// The number of processes.
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// True on process 0, the one that prints and writes files.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Runs `f` on process 0 only (printing progress, say).
    pub fn on_root(&self, f: impl FnOnce()) {
        if self.is_root() {
            f();
        }
    }

    /// Waits until every process gets here.
    pub fn barrier(&self) {
        self.comm.barrier();
    }

    /// The sum of `x` over all processes, on every process (to combine
    /// metrics such as correct predictions).
    pub fn sum(&self, x: f64) -> f64 {
        let mut total = 0.0;
        self.comm
            .all_reduce_into(&x, &mut total, SystemOperation::sum());
        total
    }

    /// True on every process if every process holds bit-for-bit the same
    /// parameter values (a checksum of their bits, compared over all
    /// processes).
    pub fn agree<T: MpiElement>(&self, params: &ParamStore<T>) -> bool {
        let mut h = Fnv::new();
        for (_, name, value) in params.iter() {
            h.bytes(name.as_bytes());
            for v in value.data() {
                h.bytes(&v.to_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        let all = self.gather_u64(h.0);
        all.iter().all(|&x| x == all[0])
    }

    /// Saves `params` (as [`ParamStore::save`]) on process 0 only; every
    /// process waits for it and gets its outcome, so an error is seen
    /// everywhere and no process runs ahead of a half-written file.
    ///
    /// # Errors
    /// [`DistError::Save`], on every process, if the save failed.
    pub fn save_on_root<T: MpiElement>(
        &self,
        params: &ParamStore<T>,
        path: impl AsRef<Path>,
    ) -> Result<(), DistError> {
        let mut message = String::new();
        if self.is_root() {
            if let Err(e) = params.save(path) {
                message = e.to_string();
            }
        }
        let message = self.broadcast_string(message);
        if message.is_empty() {
            Ok(())
        } else {
            Err(DistError::Save(message))
        }
    }

    /// Every process's `x`, in rank order.
    pub(crate) fn gather_u64(&self, x: u64) -> Vec<u64> {
        let mut all = vec![0u64; self.size()];
        self.comm.all_gather_into(&x, &mut all[..]);
        all
    }

    /// Process 0's `s` on every process (a run directory's name, say).
    pub fn broadcast_string(&self, s: String) -> String {
        let root = self.comm.process_at_rank(0);
        let mut len = s.len() as u64;
        root.broadcast_into(&mut len);
        if len == 0 {
            // An empty Vec<u8>'s dangling pointer is 0x1, which Open MPI
            // takes for MPI_IN_PLACE and refuses.
            return String::new();
        }
        let mut bytes = if self.is_root() {
            s.into_bytes()
        } else {
            vec![0u8; len as usize]
        };
        root.broadcast_into(&mut bytes[..]);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    pub(crate) fn comm(&self) -> &SimpleCommunicator {
        &self.comm
    }
}

/// FNV-1a, 64 bits: a checksum that is the same on every machine.
pub(crate) struct Fnv(pub(crate) u64);

impl Fnv {
    pub(crate) fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
