//! The chapter's first-order family side by side: the same network, data,
//! initial weights and batches trained with SGD, SGD with momentum,
//! AdaGrad, RMSProp and Adam. Prints each one's final loss and accuracy and
//! draws every loss curve in one picture (`out/optimizers.svg`).
//!
//! ```text
//! cargo run --release --example optimizers [-- --epochs N --seed N --quick]
//! ```

mod common;

use common::{accuracy, argmax_rows, save_panels, Args, Panel, Series};
use std::path::Path;
use tapegrad::data::{read_csv, train_test_split, MiniBatches, Rows, Standardizer};
use tapegrad::nn::{
    cross_entropy, Activation, AdaGrad, Adam, Mlp, Module, Optimizer, ParamStore, RmsProp, Sgd,
};
use tapegrad::Tape;

const USAGE: &str = "\
Compare first-order optimizers on the 8x8 digits.

usage: cargo run --release --example optimizers -- [--epochs N] [--seed N] [--out DIR] [--quick]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse(USAGE);
    let epochs = args.count("epochs", if args.flag("quick") { 3 } else { 30 });
    let seed: u64 = args.value("seed", 42);
    let out = args.out_dir();

    let table = read_csv(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv"))?;
    let (x, y) = table.features_and_labels::<f32>("digit")?;
    let (train, test) = train_test_split(x.shape()[0], 0.2, seed);
    let scaler = Standardizer::fit(&x.rows(&train));
    let (x_train, y_train) = (scaler.transform(&x.rows(&train)), y.rows(&train));
    let (x_test, y_test) = (scaler.transform(&x.rows(&test)), y.rows(&test));
    let batches = MiniBatches::new(&x_train, &y_train, 64, seed);

    let optimizers: Vec<(&str, Box<dyn Optimizer<f32>>)> = vec![
        ("SGD (lr 0.05)", Box::new(Sgd::new(0.05))),
        (
            "momentum (lr 0.05, 0.9)",
            Box::new(Sgd::new(0.05).momentum(0.9)),
        ),
        ("AdaGrad (lr 0.05)", Box::new(AdaGrad::new(0.05))),
        ("RMSProp (lr 0.001)", Box::new(RmsProp::new(1e-3))),
        ("Adam (lr 0.001)", Box::new(Adam::new(1e-3))),
    ];
    println!("digits: MLP 64-32-10 (tanh), {} training samples, batches of 64, {epochs} epochs, seed {seed}", train.len());
    let mut curves = vec![];
    for (name, mut opt) in optimizers {
        let mut params = ParamStore::new();
        let model = Mlp::new(&mut params, "mlp", &[64, 32, 10], Activation::Tanh, seed);
        let tape = Tape::new();
        let mut points = vec![];
        for epoch in 0..epochs {
            let mut sum = 0.0;
            for (xb, yb) in batches.epoch(epoch) {
                tape.reset();
                let loss = cross_entropy(model.forward(&params, tape.constant(xb)), &yb);
                sum += loss.item() as f64;
                opt.step(&mut params, &loss.backward());
            }
            points.push(((epoch + 1) as f64, sum / batches.len() as f64));
        }
        tape.reset();
        let logits = tape
            .no_grad(|| model.forward(&params, tape.constant(x_test.clone())))
            .value();
        let acc = accuracy(&argmax_rows(&logits), &y_test);
        println!(
            "  {name:<24} final training loss {:.4}, held-out accuracy {:.1}%",
            points.last().map_or(0.0, |p| p.1),
            100.0 * acc
        );
        curves.push(Series { name, points });
    }
    let svg = out.join("optimizers.svg");
    save_panels(
        &svg,
        &[Panel {
            title: "first-order optimizers on the 8x8 digits",
            x_label: "epoch",
            y_label: "training loss",
            series: curves,
            log_y: true,
        }],
    );
    println!("loss curves: {}", svg.display());
    Ok(())
}
