//! The four activation functions of the chapter and their derivatives,
//! computed by the engine and drawn in `out/activations.svg`: sigmoid
//! (f' = f(1 - f)), tanh (f' = 1 - f²), ReLU (f' = 1 if x > 0 else 0) and
//! leaky ReLU (f' = 1 if x > 0 else 0.01).
//!
//! ```text
//! cargo run --release --example activations
//! ```

mod common;

use common::{save_panels, Args, Panel, Series};
use tapegrad::{Tape, Tensor, Var};

const USAGE: &str = "\
Plot sigmoid, tanh, ReLU and leaky ReLU with their derivatives.

usage: cargo run --release --example activations -- [--out DIR]";

/// An activation applied on the tape.
type Act = for<'t> fn(Var<'t, f64>) -> Var<'t, f64>;
/// The chapter's derivative formula, given x and f(x).
type Formula = fn(f64, f64) -> f64;

fn main() {
    let args = Args::parse(USAGE);
    let out = args.out_dir();
    let xs: Vec<f64> = (0..=160).map(|i| -4.0 + 0.05 * i as f64).collect();
    let acts: [(&str, Act, Formula); 4] = [
        ("sigmoid", |x| x.sigmoid(), |_, f| f * (1.0 - f)),
        ("tanh", |x| x.tanh(), |_, f| 1.0 - f * f),
        ("ReLU", |x| x.relu(), |x, _| if x > 0.0 { 1.0 } else { 0.0 }),
        (
            "leaky ReLU",
            |x| x.leaky_relu(),
            |x, _| if x > 0.0 { 1.0 } else { 0.01 },
        ),
    ];
    let mut panels = vec![];
    for (name, act, chapter_formula) in acts {
        // One tensor of inputs: the gradient of Σ f(x) is f'(x) elementwise.
        let tape = Tape::new();
        let x = tape.var(Tensor::from_vec(xs.clone(), [xs.len()]));
        let f = act(x);
        let df = f.sum().backward()[x].clone();
        let fv = f.value();
        let worst = xs
            .iter()
            .zip(fv.data().iter().zip(df.data()))
            .map(|(&x, (&f, &d))| (d - chapter_formula(x, f)).abs())
            .fold(0.0, f64::max);
        println!(
            "{name:<11} engine's f' against the chapter's formula: largest difference {worst:.1e}"
        );
        panels.push(Panel {
            title: name,
            x_label: "x",
            y_label: "",
            series: vec![
                Series {
                    name: "f(x)",
                    points: xs.iter().copied().zip(fv.data().iter().copied()).collect(),
                },
                Series {
                    name: "f'(x)",
                    points: xs.iter().copied().zip(df.data().iter().copied()).collect(),
                },
            ],
            log_y: false,
        });
    }
    let svg = out.join("activations.svg");
    save_panels(&svg, &panels);
    println!("plots: {}", svg.display());
}
