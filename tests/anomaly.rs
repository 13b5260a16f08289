//! Anomaly mode: the first non-finite value, forward or backward, panics
//! naming the op, the node, its inputs' shapes and the line that recorded
//! it; off, nothing is checked.

mod common;

use common::panic_message;
use tapegrad::nn::{cross_entropy, Activation, Mlp, Module, ParamStore};
use tapegrad::{Tape, Tensor};

#[test]
fn a_non_finite_forward_value_names_the_op_its_inputs_and_the_line() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape
        .var(Tensor::from_vec(vec![1.0, 0.0, 2.0], [3]))
        .named("x");
    let msg = panic_message(|| {
        let _ = x.ln();
    });
    let line = line!() - 2;
    assert!(msg.contains("ln node"), "{msg}");
    assert!(msg.contains("-inf at element 1"), "{msg}");
    assert!(msg.contains("x (leaf, shape [3])"), "{msg}");
    assert!(msg.contains(&format!("tests/anomaly.rs:{line}")), "{msg}");
}

#[test]
fn a_non_finite_scalar_forward_value_is_caught_too() {
    let tape = Tape::<f64>::new();
    let (a, b) = (tape.var(1.0), tape.var(0.0));
    let msg = panic_message(|| {
        tape.detect_anomaly(|| {
            let _ = a / b;
        })
    });
    assert!(msg.contains("div node") && msg.contains("inf"), "{msg}");
    // The scope restored the setting: off again, nothing is checked.
    assert!(!tape.is_detecting_anomaly());
    assert!((a / b).item().is_infinite());
}

#[test]
fn a_nan_in_the_data_is_reported_where_it_was_put_on_the_tape() {
    let mut params = ParamStore::<f64>::new();
    let m = Mlp::new(&mut params, "mlp", &[3, 4, 2], Activation::Relu, 1);
    let mut x = Tensor::<f64>::ones([2, 3]);
    x.data_mut()[4] = f64::NAN;
    let tape = Tape::new();
    tape.set_detect_anomaly(true);
    let msg = panic_message(|| {
        let loss = cross_entropy(m.forward(&params, tape.constant(x.clone())), &[0, 1]);
        drop(loss.backward());
    });
    assert!(
        msg.contains("constant node") && msg.contains("NaN at element 4"),
        "{msg}"
    );
    assert!(msg.contains("a leaf"), "{msg}");
}

#[test]
fn a_non_finite_backward_contribution_names_the_node_and_where_it_was_recorded() {
    let tape = Tape::<f64>::new();
    tape.set_detect_anomaly(true);
    let x = tape.var(Tensor::from_vec(vec![4.0, 0.0], [2])).named("x");
    let line = line!() + 1;
    let y = x.sqrt().named("root");
    let loss = y.sum();
    let msg = panic_message(|| drop(loss.backward()));
    assert!(msg.contains("backward of sqrt node root"), "{msg}");
    assert!(msg.contains("inf at element 1 to its input 0 (x"), "{msg}");
    assert!(msg.contains(&format!("tests/anomaly.rs:{line}")), "{msg}");
}

#[test]
fn off_by_default_non_finite_values_flow_through() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![4.0, 0.0], [2]));
    let g = x.sqrt().sum().backward();
    assert!(g[x].data()[1].is_infinite());
}
