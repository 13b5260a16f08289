//! The chapter's 2-layer ReLU regression network (docs/tutorial.md) as an
//! interactive page: two inputs, two ReLU hidden neurons, an identity
//! output and the squared loss J = (t − y)².
//!
//! ```text
//! cargo run --example chapter_network            # writes out/chapter.html
//! cargo run --example chapter_network -- FILE
//! ```

use tapegrad::Tape;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "out/chapter.html".into());
    let tape = Tape::<f64>::new();
    let x = [
        tape.constant(0.5).named("x_1"),
        tape.constant(-1.0).named("x_2"),
    ];
    let w1 = [
        [tape.var(0.8).named("w1_11"), tape.var(-0.4).named("w1_12")],
        [tape.var(0.3).named("w1_21"), tape.var(0.6).named("w1_22")],
    ];
    let w2 = [tape.var(1.5).named("w2_1"), tape.var(-0.7).named("w2_2")];
    let t = 0.2;
    let z1: Vec<_> = (0..2)
        .map(|m| (w1[0][m] * x[0] + w1[1][m] * x[1]).named(&format!("z1_{}", m + 1)))
        .collect();
    let a1: Vec<_> = (0..2)
        .map(|m| z1[m].relu().named(&format!("a1_{}", m + 1)))
        .collect();
    let z2 = (w2[0] * a1[0] + w2[1] * a1[1]).named("z2");
    let y = (z2 * 1.0).named("y");
    let j = (t - y).square().named("J");
    let trace = j.backward_traced();

    // The chapter's formula for dJ/dw1_11, number for number.
    let relu_d = if z1[0].item() > 0.0 { 1.0 } else { 0.0 };
    let by_hand = -2.0 * (t - y.item()) * 1.0 * 1.5 * relu_d * 0.5;
    let engine = trace.step(w1[0][0]).unwrap().global.item();
    assert!((engine - by_hand).abs() < 1e-15);
    println!(
        "J = {:.6}   dJ/dw1_11 = {engine:.6} (the chapter's formula: {by_hand:.6})",
        j.item()
    );

    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir).expect("create the page's folder");
    }
    let page = trace
        .html()
        .title("The chapter's network: J = (t − y)², one sample")
        .note("target t", format!("{t}"));
    page.write(&path)
        .unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    println!("interactive page written to {path} (open it in a browser)");
}
