//! Data-parallel step time against the number of processes, on the W2
//! workload of `benches/compare` (MLP 784-H-H-10, ReLU, cross-entropy,
//! Adam, a fixed synthetic batch): the global batch is split among the
//! processes, and each step's gradients are all-reduced.
//!
//! ```text
//! cargo build --release --features mpi --example ddp_scaling
//! mpirun -np 1 -x TAPEGRAD_THREADS=1 target/release/examples/ddp_scaling --hidden 256 --batch 128
//! mpirun -np 2 -x TAPEGRAD_THREADS=1 target/release/examples/ddp_scaling --hidden 256 --batch 128
//! ```
//!
//! Prints, from process 0, the median step time, samples per second, the
//! backward walk and the reduction left after it, bytes all-reduced per
//! step and the share of all-reduce time hidden behind backward.

mod common;
// The W2 model and data of the benches (which include the CNN helper
// that `common` has too).
#[path = "../benches/common/workloads.rs"]
#[allow(clippy::duplicate_mod)]
mod workloads;

use common::Args;
use std::time::Instant;
use tapegrad::data::ShardedBatches;
use tapegrad::nn::distributed::{Combine, DataParallel, World};
use tapegrad::nn::{cross_entropy_with, Adam, Module, Optimizer, Reduction};
use tapegrad::{Tape, Tensor};
use workloads::W2;

const USAGE: &str = "\
Data-parallel step time of the W2 MLP.

usage: mpirun -np P target/release/examples/ddp_scaling [options]

  --hidden N     hidden width (default 256: W2 medium; 1024: W2 large)
  --batch N      global batch (default 128)
  --steps N      measured steps after 10 warm-up steps (default 50)
  --bucket-kb N  bucket size in KiB (default 25600, PyTorch's 25 MiB; the first
                 bucket is 1 MiB or this, whichever is smaller)
  --no-overlap   start the all-reduces after backward instead of during it
  --quick        a few steps (also: TAPEGRAD_QUICK=1)";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let world = World::init().expect("MPI starts");
    let args = Args::parse(USAGE);
    let hidden = args.count("hidden", 256);
    let batch = args.count("batch", 128);
    let steps = args.count("steps", if args.flag("quick") { 5 } else { 50 });
    let bucket = args.count("bucket-kb", 25 << 10) << 10;
    let (p, rank) = (world.size(), world.rank());

    let W2 {
        mut params,
        model,
        x,
        labels,
        ..
    } = W2::new(hidden, batch);
    let mut ddp = DataParallel::new(&world, &mut params)
        .expect("the same model everywhere")
        .combine(Combine::Sum)
        .overlap(!args.flag("no-overlap"))
        .bucket_bytes((1 << 20).min(bucket), bucket);
    let idx = ShardedBatches::new(batch, batch, 0, p, rank)
        .epoch(0)
        .next()
        .expect("one batch");
    let (xb, yb): (Tensor<f32>, Vec<usize>) =
        (x.rows(&idx), idx.iter().map(|&i| labels[i]).collect());
    let mut opt = Adam::new(1e-3);
    let tape = Tape::new();
    let (mut step_ms, mut backward_ms, mut tail_ms, mut hidden_share) =
        (vec![], vec![], vec![], vec![]);
    for s in 0..10 + steps {
        world.barrier(); // time the same step on every process
        let t0 = Instant::now();
        tape.reset();
        let out = model.forward(&params, tape.constant(xb.clone()));
        let loss = cross_entropy_with(out, &yb, Reduction::Sum) * (1.0 / batch as f32);
        let grads = ddp.backward(&params, loss);
        opt.step(&mut params, &grads);
        if s >= 10 {
            let t = ddp.last_timing();
            step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            backward_ms.push(t.backward.as_secs_f64() * 1e3);
            tail_ms.push(t.total.saturating_sub(t.backward).as_secs_f64() * 1e3);
            hidden_share.push(t.hidden_fraction());
        }
    }
    assert!(world.agree(&params), "parameters differ between processes");
    let bytes = ddp.last_timing().bytes();
    let step = median(step_ms);
    world.on_root(|| {
        println!(
            "{{\"processes\": {p}, \"hidden\": {hidden}, \"batch\": {batch}, \"step_ms\": {step:.3}, \
             \"samples_per_s\": {:.0}, \"backward_ms\": {:.3}, \"after_backward_ms\": {:.3}, \
             \"bytes\": {bytes}, \"buckets\": {}, \"hidden_share\": {:.2}}}",
            batch as f64 / (step / 1e3),
            median(backward_ms),
            median(tail_ms),
            ddp.num_buckets(),
            median(hidden_share)
        )
    });
}
