//! The `mnist` job trained data-parallel on several processes over MPI.
//!
//! Every process holds the same 784-512-256-10 MLP (process 0's initial
//! weights are broadcast), takes its own part of each global batch of the
//! same shuffle, and the gradients are summed over processes in buckets
//! while the backward pass is still running, so every process takes the
//! same Adam step. Process 0 prints progress, the held-out accuracy
//! (evaluated by all processes, each on its share of the test digits),
//! the timing of communication against backward, and saves the
//! checkpoint.
//!
//! ```text
//! cargo build --release --features mpi --example mnist_ddp
//! mpirun -np 2 target/release/examples/mnist_ddp
//! mpirun -np 2 target/release/examples/mnist_ddp --epochs 5 --batch 128
//! ```
//!
//! On a 2-core machine, give each process one thread:
//! `mpirun -np 2 -x TAPEGRAD_THREADS=1 target/release/examples/mnist_ddp`.

mod common;

use common::mnist::{build_model, bundled};
use common::training::{end_epoch, epoch_bar, logits, Curves};
use common::{jitter, Args};
use std::error::Error;
use std::time::{Duration, Instant};
use tapegrad::data::{Rows, ShardedBatches};
use tapegrad::nn::distributed::{Combine, DataParallel, World};
use tapegrad::nn::{cross_entropy_with, Adam, Module, Optimizer, ParamStore, Reduction, Schedule};
use tapegrad::{Tape, Tensor};

const USAGE: &str = "\
Train the MNIST MLP data-parallel over MPI.

usage: mpirun -np P target/release/examples/mnist_ddp [options]

  --epochs N     passes over the training set (default 20; 1 with --quick)
  --batch N      global mini-batch size, split among the processes (default 64)
  --lr X         Adam learning rate, cosine-annealed (default 0.001)
  --seed N       seed of the split, the initial weights and the shuffling (default 42)
  --no-overlap   start the all-reduces after backward instead of during it
  --out DIR      where the plot and the checkpoint go (default out/)
  --quick        one short epoch (also: TAPEGRAD_QUICK=1)";

fn main() {
    let world = match World::init() {
        Ok(w) => w,
        Err(e) => {
            eprintln!("mnist_ddp: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = run(&world) {
        // Every process reaches the same errors (they come from collective
        // calls or from the same files), so each can stop on its own.
        eprintln!("mnist_ddp (process {}): {e}", world.rank());
        std::process::exit(1);
    }
}

/// What one process measured over the run's steps.
#[derive(Default)]
struct Timing {
    steps: u32,
    step: Duration,
    backward: Duration,
    reduce_tail: Duration,
    hidden: f64,
    bytes: usize,
}

fn run(world: &World) -> Result<(), Box<dyn Error>> {
    let args = Args::parse(USAGE);
    let quick = args.flag("quick");
    let epochs = args.count("epochs", if quick { 1 } else { 20 });
    let batch = args.count("batch", 64);
    let lr: f64 = args.value("lr", 1e-3);
    let seed: u64 = args.value("seed", 42);
    let out = args.out_dir();
    let (p, rank) = (world.size(), world.rank());

    let mut data = bundled(seed)?;
    if quick {
        let keep: Vec<usize> = (0..data.y_train.len().min(2000)).collect();
        data.x_train = data.x_train.rows(&keep);
        data.y_train = data.y_train.rows(&keep);
    }
    if batch < p {
        return Err(format!("--batch {batch} is smaller than the {p} processes").into());
    }
    world.on_root(|| {
        println!(
            "MNIST on {p} processes: {} training and {} test digits; MLP 784-512-256-10 (ReLU, dropout 0.2), \
             Adam lr {lr}, global batch {batch} (about {} per process), {epochs} epochs, seed {seed}",
            data.y_train.len(),
            data.y_test.len(),
            batch / p
        )
    });

    let mut params = ParamStore::<f32>::new();
    let model = build_model(&mut params, seed);
    // Each process's loss is its part's summed loss over the global batch
    // size; summed over processes, that is the mean loss of the batch,
    // whatever the parts' sizes.
    let mut ddp = DataParallel::new(world, &mut params)?
        .combine(Combine::Sum)
        .overlap(!args.flag("no-overlap"));
    let shards = ShardedBatches::new(data.y_train.len(), batch, seed, p, rank);
    let total_steps = (epochs * shards.len()) as u64;
    let mut opt = Adam::new(lr).with_schedule(Schedule::Cosine {
        total: total_steps,
        min_lr: lr * 0.01,
    });
    world.on_root(|| {
        println!(
            "{} weights in {} gradient bucket(s); {} steps per epoch",
            params.num_elements(),
            ddp.num_buckets(),
            shards.len()
        )
    });

    let tape = Tape::new();
    let mut curves = Curves::default();
    let mut timing = Timing::default();
    let (start, mut step, mut test_acc) = (Instant::now(), 0u64, 0.0);
    for epoch in 0..epochs {
        let bar = world
            .is_root()
            .then(|| epoch_bar(epoch, epochs, shards.len()));
        let mut local_loss = 0.0;
        for (k, idx) in shards.epoch(epoch).enumerate() {
            let t0 = Instant::now();
            tape.reset();
            let xb = jitter(
                &data.x_train.rows(&idx),
                seed ^ (step * p as u64 + rank as u64),
            );
            let yb: Vec<usize> = data.y_train.rows(&idx);
            let logits = model.forward(&params, tape.constant(xb));
            let loss = cross_entropy_with(logits, &yb, Reduction::Sum)
                * (1.0 / shards.global_batch(k) as f32);
            local_loss += loss.item() as f64;
            let grads = ddp.backward(&params, loss);
            opt.step(&mut params, &grads);
            let t = ddp.last_timing();
            timing.steps += 1;
            timing.step += t0.elapsed();
            timing.backward += t.backward;
            timing.reduce_tail += t.total.saturating_sub(t.backward);
            timing.hidden += t.hidden_fraction();
            timing.bytes = t.bytes();
            step += 1;
            if let Some(bar) = &bar {
                bar.inc(1);
            }
        }
        let train_loss = world.sum(local_loss) / shards.len() as f64;
        params.eval();
        let (test_loss, acc) = evaluate_sharded(world, &model, &params, &data.x_test, &data.y_test);
        params.train();
        let summary = format!(
            "loss {train_loss:.4}  held-out loss {test_loss:.4}  accuracy {:.2}%",
            100.0 * acc
        );
        if let Some(bar) = bar {
            end_epoch(bar, epoch, epochs, summary, start);
        }
        curves.push(epoch, train_loss, test_loss, acc);
        test_acc = 100.0 * acc;
    }
    assert!(world.agree(&params), "the processes' parameters differ");

    let n = timing.steps.max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
    let step_ms = ms(timing.step);
    world.on_root(|| {
        println!(
            "trained in {:.1?} on {p} processes: test accuracy {test_acc:.2}% on {} held-out digits; \
             parameters identical on every process",
            start.elapsed(),
            data.y_test.len()
        );
        println!(
            "per step (process 0): {step_ms:.2} ms ({:.0} samples/s), backward walk {:.2} ms, \
             reduction after the walk {:.2} ms, {:.2} MB all-reduced, {:.0}% of all-reduce time \
             hidden behind backward",
            batch as f64 / (step_ms / 1e3),
            ms(timing.backward),
            ms(timing.reduce_tail),
            timing.bytes as f64 / 1e6,
            100.0 * timing.hidden / n
        );
    });

    if world.is_root() {
        let svg = out.join("mnist-ddp-curves.svg");
        curves.save(&svg);
        println!("curves: {}", svg.display());
    }
    let ckpt = out.join("mnist_ddp.safetensors");
    world.save_on_root(&params, &ckpt)?;
    world.on_root(|| println!("checkpoint: {}", ckpt.display()));
    Ok(())
}

/// Held-out loss and accuracy over all processes, each scoring a
/// contiguous share of the test set.
fn evaluate_sharded(
    world: &World,
    model: &impl Module<f32>,
    params: &ParamStore<f32>,
    x: &Tensor<f32>,
    y: &[usize],
) -> (f64, f64) {
    let n = y.len();
    let (p, r) = (world.size(), world.rank());
    let mine: Vec<usize> = (r * n / p..(r + 1) * n / p).collect();
    let scores = logits(model, params, &x.rows(&mine));
    let labels: Vec<usize> = mine.iter().map(|&i| y[i]).collect();
    let tape = Tape::new();
    let loss_sum = tape.no_grad(|| {
        cross_entropy_with(tape.constant(scores.clone()), &labels, Reduction::Sum).item()
    });
    let pred = scores.argmax(1);
    let correct = pred.iter().zip(&labels).filter(|(a, b)| a == b).count();
    (
        world.sum(loss_sum as f64) / n as f64,
        world.sum(correct as f64) / n as f64,
    )
}
