//! A convolutional network reads handwritten digits.
//!
//! Three blocks of Conv(3×3; 16, 32, 64 channels) · BatchNorm · ReLU ·
//! MaxPool(2), then Flatten · Linear(576→128) · ReLU · Dropout(0.2) ·
//! Linear(128→10), trained by SGD with Nesterov momentum 0.9, weight decay
//! 5e-4 and a cosine schedule, on the bundled 10,000 MNIST digits (8,000
//! to learn from, 2,000 held out), each epoch's digits shifted by up to two
//! pixels. Shows a progress bar per epoch, writes the loss and accuracy
//! curves (`out/mnist-cnn-curves.svg`) and a checkpoint
//! (`out/mnist-cnn.safetensors`) that it reloads and checks.
//!
//! With the default seed the held-out accuracy is 99.15%; seeds 1 and 7
//! (another split, other initial weights) gave 98.75% and 98.45% in this
//! session's runs, so 99% is the default run's figure, not a bound.
//!
//! ```text
//! cargo run --release --example mnist_cnn   # 99.15% in 20 epochs, about 2.3 minutes on 2 cores
//! ```

mod common;

use common::cnn::mnist_cnn;
use common::training::{end_epoch, epoch_bar, evaluate, Curves};
use common::{jitter, Args};
use std::error::Error;
use std::path::Path;
use std::time::Instant;
use tapegrad::data::{read_mnist, train_test_split, MiniBatches, Rows};
use tapegrad::nn::{cross_entropy, Module, Optimizer, ParamStore, Schedule, Sgd};
use tapegrad::{Tape, Tensor};

const USAGE: &str = "\
Train a small CNN on the bundled MNIST digits.

usage: cargo run --release --example mnist_cnn -- [options]

  --epochs N     passes over the training set (default 20; 1 with --quick)
  --batch N      mini-batch size (default 32)
  --lr X         SGD learning rate, cosine-annealed (default 0.05)
  --seed N       seed of the split, the weights and the shuffling (default 42)
  --out DIR      where the curves and the checkpoint go (default out)
  --quick        one short epoch (also: TAPEGRAD_QUICK=1)";

/// `(n, 784)` rows as `(n, 1, 28, 28)` images.
fn images(x: &Tensor<f32>) -> Tensor<f32> {
    x.reshape([x.shape()[0], 1, 28, 28])
}

fn main() {
    if let Err(e) = run() {
        eprintln!("mnist_cnn: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = Args::parse(USAGE);
    let quick = args.flag("quick");
    let epochs = args.count("epochs", if quick { 1 } else { 20 });
    let batch = args.count("batch", 32);
    let lr: f64 = args.value("lr", 0.05);
    let seed: u64 = args.value("seed", 42);

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data");
    let (x, y) = read_mnist::<f32>(
        dir.join("mnist-10k-images-idx3-ubyte.gz"),
        dir.join("mnist-10k-labels-idx1-ubyte.gz"),
    )?;
    let (train, test) = train_test_split(y.len(), 0.2, seed);
    let (mut x_train, mut y_train) = (x.rows(&train), y.rows(&train));
    let (x_test, y_test) = (images(&x.rows(&test)), y.rows(&test));
    if quick {
        let keep: Vec<usize> = (0..1000).collect();
        x_train = x_train.rows(&keep);
        y_train = y_train.rows(&keep);
    }
    let mut params = ParamStore::<f32>::new();
    let model = mnist_cnn(&mut params, seed);
    let batches = MiniBatches::new(&x_train, &y_train, batch, seed);
    let mut opt = Sgd::new(lr)
        .nesterov(0.9)
        .weight_decay(5e-4)
        .with_schedule(Schedule::Cosine {
            total: (epochs * batches.len()) as u64,
            min_lr: lr * 0.01,
        });
    println!(
        "MNIST CNN: {} training and {} held-out digits, {} weights, batch {batch}, {epochs} epochs",
        y_train.len(),
        y_test.len(),
        params.num_elements()
    );
    let tape = Tape::new();
    let mut curves = Curves::default();
    let (start, mut step, mut acc) = (Instant::now(), 0u64, 0.0);
    for epoch in 0..epochs {
        params.train();
        let bar = epoch_bar(epoch, epochs, batches.len());
        let (mut sum, mut count) = (0.0, 0);
        for (xb, yb) in batches.epoch(epoch) {
            tape.reset();
            let xb = images(&jitter(&xb, seed ^ step));
            let loss = cross_entropy(model.forward(&params, tape.constant(xb)), &yb);
            sum += loss.item() as f64;
            count += 1;
            opt.step(&mut params, &loss.backward());
            step += 1;
            bar.inc(1);
            if count % 10 == 0 {
                bar.set_message(format!("loss {:.4}", sum / count as f64));
            }
        }
        params.eval();
        let (test_loss, test_acc) = evaluate(&model, &params, &x_test, &y_test);
        let mean_loss = sum / count as f64;
        let summary = format!(
            "loss {mean_loss:.4}  held-out loss {test_loss:.4}  accuracy {:.2}%",
            100.0 * test_acc
        );
        end_epoch(bar, epoch, epochs, summary, start);
        curves.push(epoch, mean_loss, test_loss, test_acc);
        acc = test_acc;
    }
    println!(
        "trained in {:.1?}: held-out accuracy {:.2}% on {} digits",
        start.elapsed(),
        100.0 * acc,
        y_test.len()
    );
    let out = args.out_dir();
    let svg = out.join("mnist-cnn-curves.svg");
    curves.save(&svg);
    println!("curves: {}", svg.display());

    // Save (weights and batch-norm statistics), reload into a fresh model.
    let ckpt = out.join("mnist-cnn.safetensors");
    params.save(&ckpt)?;
    let mut restored = ParamStore::<f32>::new();
    let reloaded = mnist_cnn(&mut restored, 0);
    restored.eval();
    restored.load(&ckpt)?;
    let (_, reloaded_acc) = evaluate(&reloaded, &restored, &x_test, &y_test);
    println!(
        "checkpoint: {} ({} weights); reloaded model's held-out accuracy {:.2}%",
        ckpt.display(),
        restored.num_elements(),
        100.0 * reloaded_acc
    );
    assert_eq!(
        reloaded_acc, acc,
        "the reloaded model classifies as the trained one"
    );
    Ok(())
}
