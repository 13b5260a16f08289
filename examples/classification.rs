//! Classification with cross-entropy on two real data sets: Fisher's iris
//! (4 measurements, 3 species) and the 8×8 handwritten digits (64 pixels,
//! 10 classes). Each is split 80/20 with a fixed seed, standardised, and
//! learned by a small MLP with Adam on mini-batches.
//!
//! ```text
//! cargo run --release --example classification [-- --epochs N --seed N --quick]
//! ```

mod common;

use common::{accuracy, argmax_rows, Args};
use std::path::Path;
use tapegrad::data::{read_csv, train_test_split, MiniBatches, Rows, Standardizer};
use tapegrad::nn::{cross_entropy, Activation, Adam, Mlp, Module, Optimizer, ParamStore};
use tapegrad::Tape;

const USAGE: &str = "\
Cross-entropy classification on iris and on the 8x8 digits.

usage: cargo run --release --example classification -- [--epochs N] [--seed N] [--quick]";

/// Trains an MLP of the given hidden sizes and returns the held-out accuracy.
fn run(
    file: &str,
    label: &str,
    hidden: &[usize],
    epochs: usize,
    seed: u64,
) -> Result<f64, Box<dyn std::error::Error>> {
    let table = read_csv(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data")
            .join(file),
    )?;
    let (x, y) = table.features_and_labels::<f32>(label)?;
    let classes = y.iter().max().map_or(0, |m| m + 1);
    let (train, test) = train_test_split(x.shape()[0], 0.2, seed);
    let scaler = Standardizer::fit(&x.rows(&train));
    let (x_train, y_train) = (scaler.transform(&x.rows(&train)), y.rows(&train));
    let (x_test, y_test) = (scaler.transform(&x.rows(&test)), y.rows(&test));

    let sizes: Vec<usize> = std::iter::once(x.shape()[1])
        .chain(hidden.iter().copied())
        .chain([classes])
        .collect();
    let mut params = ParamStore::new();
    let model = Mlp::new(&mut params, "mlp", &sizes, Activation::Relu, seed);
    let mut opt = Adam::new(1e-2);
    let batches = MiniBatches::new(&x_train, &y_train, 32, seed);
    let tape = Tape::new();
    let mut last = 0.0;
    for epoch in 0..epochs {
        let mut sum = 0.0;
        for (xb, yb) in batches.epoch(epoch) {
            tape.reset();
            let loss = cross_entropy(model.forward(&params, tape.constant(xb)), &yb);
            sum += loss.item();
            opt.step(&mut params, &loss.backward());
        }
        last = sum / batches.len() as f32;
    }
    tape.reset();
    let logits = tape
        .no_grad(|| model.forward(&params, tape.constant(x_test)))
        .value();
    let acc = accuracy(&argmax_rows(&logits), &y_test);
    println!(
        "{file}: {} training, {} test samples, {classes} classes, MLP {sizes:?}: final training loss {last:.4}, \
         held-out accuracy {:.1}%",
        train.len(),
        test.len(),
        100.0 * acc
    );
    Ok(acc)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let epochs = args.count("epochs", if args.flag("quick") { 5 } else { 60 });
    let seed: u64 = args.value("seed", 42);
    run("iris.csv", "species", &[16], epochs, seed)?;
    run("digits.csv", "digit", &[64], epochs, seed)?;
    Ok(())
}
