//! Matt Mazur's "A Step by Step Backpropagation Example", recorded on the
//! tape and written as an interactive page: a 2-2-2 network of sigmoids
//! with inputs 0.05, 0.10, targets 0.01, 0.99, weights 0.15 … 0.55 and
//! biases 0.35, 0.60, and one step of gradient descent at rate 0.5.
//!
//! ```text
//! cargo run --example mazur_backprop            # writes out/mazur.html
//! cargo run --example mazur_backprop -- FILE
//! ```
//!
//! The page shows his numbers to 9 digits: out_h1 = 0.593269992,
//! E_total = 0.298371109, and after the step w5 = 0.35891648.

use tapegrad::{Tape, Var};

/// sigmoid(a·x₁ + b·x₂ + bias), its two nodes named net_NAME and out_NAME.
fn neuron<'t>(
    a: Var<'t, f64>,
    b: Var<'t, f64>,
    x: [Var<'t, f64>; 2],
    bias: Var<'t, f64>,
    name: &str,
) -> Var<'t, f64> {
    let net = (x[0] * a + x[1] * b + bias).named(&format!("net_{name}"));
    net.sigmoid().named(&format!("out_{name}"))
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/mazur.html".into());
    let tape = Tape::<f64>::new();
    let i = [
        tape.constant(0.05).named("i1"),
        tape.constant(0.10).named("i2"),
    ];
    let names = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"];
    let start = [0.15, 0.20, 0.25, 0.30, 0.40, 0.45, 0.50, 0.55];
    let w: Vec<_> = names
        .iter()
        .zip(start)
        .map(|(n, v)| tape.var(v).named(n))
        .collect();
    // One bias per layer, shared by its two neurons, as in the article.
    let (b1, b2) = (tape.var(0.35).named("b1"), tape.var(0.60).named("b2"));
    let h = [
        neuron(w[0], w[1], i, b1, "h1"),
        neuron(w[2], w[3], i, b1, "h2"),
    ];
    let o = [
        neuron(w[4], w[5], h, b2, "o1"),
        neuron(w[6], w[7], h, b2, "o2"),
    ];
    let targets = [0.01f64, 0.99];
    let e: Vec<_> = (0..2)
        .map(|k| ((targets[k] - o[k]).square() * 0.5).named(&format!("E_o{}", k + 1)))
        .collect();
    let total = (e[0] + e[1]).named("E_total");
    let trace = total.backward_traced();

    let rate = 0.5;
    let updated: Vec<(String, f64)> = names
        .iter()
        .zip(&w)
        .map(|(n, v)| {
            (
                n.to_string(),
                v.item() - rate * trace.step(*v).unwrap().global.item(),
            )
        })
        .collect();
    let w5 = updated[4].1;
    println!(
        "out_h1 = {:.9}   E_total = {:.9}   w5 after one step = {w5:.8}",
        h[0].item(),
        total.item()
    );
    // His published figures.
    assert!((h[0].item() - 0.593269992).abs() < 5e-10);
    assert!((total.item() - 0.298371109).abs() < 5e-10);
    assert!((w5 - 0.35891648).abs() < 5e-9);

    let mut page = trace
        .html()
        .title("Matt Mazur's step-by-step backpropagation example")
        .digits(9)
        .note("targets", "o1 = 0.01, o2 = 0.99")
        .note("learning rate η", format!("{rate}"));
    // His two worked updates on the page; all eight in the terminal.
    for (n, v) in [&updated[4], &updated[0]] {
        page = page.note(
            format!("{n} after one step, {n} − η·∂E_total/∂{n}"),
            format!("{v:.8}"),
        );
    }
    for (n, v) in &updated {
        println!("  {n} -> {v:.8}");
    }
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).expect("create the page's folder");
    }
    page.write(&path)
        .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    println!("interactive page written to {path} (open it in a browser)");
}
