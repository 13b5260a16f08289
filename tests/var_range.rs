//! Many scalar leaves under one handle (`Tape::vars`) and their gradients
//! as one slice (`Gradients::items`): the same numbers as one `Var` each,
//! and the same refusals.

mod common;

use common::panic_message;
use tapegrad::{Tape, Var};

/// A small scalar network built twice: once from `vars`, once from a
/// `var` per weight. Gradients agree exactly, including a weight the
/// output does not use (zero).
#[test]
fn range_gradients_match_one_var_each() {
    let values: Vec<f64> = (0..7).map(|j| 0.3 * (j as f64).sin() + 0.1).collect();
    fn net<'t>(w: &[Var<'t, f64>], x: Var<'t, f64>) -> Var<'t, f64> {
        let h = (w[0] * x + w[1]).tanh() * w[2] + (w[3] * x).exp() * w[4];
        h * h + w[5] // w[6] is not used
    }

    let tape = Tape::<f64>::new();
    let x = tape.constant(0.7);
    let range = tape.vars(values.iter().copied());
    let ws: Vec<_> = range.iter().collect();
    let g = net(&ws, x).backward();
    let from_range = g.items(&range).into_owned();

    let single = Tape::<f64>::new();
    let x = single.constant(0.7);
    let ws: Vec<_> = values.iter().map(|&v| single.var(v)).collect();
    let g1 = net(&ws, x).backward();
    let one_each: Vec<f64> = ws.iter().map(|&w| g1.item(w)).collect();

    assert_eq!(from_range, one_each);
    assert_eq!(from_range[6], 0.0);
    assert!(from_range[..6].iter().all(|&d| d != 0.0));
    assert_eq!(range.len(), 7);
    assert_eq!(range.get(2).item(), values[2]);
}

/// A gradient read as a tensor first (which boxes it) still comes back
/// right through `items` (the slow path), and `items` borrows otherwise.
#[test]
fn items_borrow_when_they_can_and_copy_when_they_must() {
    let tape = Tape::<f64>::new();
    let w = tape.vars([2.0, 3.0]);
    let y = w.get(0) * w.get(1);
    let g = y.backward();
    assert!(matches!(g.items(&w), std::borrow::Cow::Borrowed(_)));
    assert_eq!(g[w.get(0)].item(), 3.0);
    let items = g.items(&w);
    assert!(matches!(items, std::borrow::Cow::Owned(_)));
    assert_eq!(&items[..], &[3.0, 2.0]);
}

#[test]
fn bad_uses_panic_with_a_message() {
    let tape = Tape::<f64>::new();
    let w = tape.vars([1.0, 2.0]);
    let msg = panic_message(|| {
        w.get(2);
    });
    assert!(
        msg.contains("VarRange::get: index 2 is out of range for 2 vars"),
        "{msg}"
    );

    // Leaves made with gradients switched off have none to read.
    let frozen = tape.no_grad(|| tape.vars([5.0]));
    let y = w.get(0) * frozen.get(0);
    let g = y.backward();
    let msg = panic_message(|| {
        g.items(&frozen);
    });
    assert!(msg.contains("no gradient"), "{msg}");

    // Leaves recorded after the output have no gradient from it either.
    let later = tape.vars([7.0]);
    let msg = panic_message(|| {
        g.items(&later);
    });
    assert!(msg.contains("no gradient"), "{msg}");

    // A range from before a reset is stale.
    drop(g);
    tape.reset();
    let y = tape.var(1.0) * 2.0;
    let g = y.backward();
    let msg = panic_message(|| {
        g.items(&w);
    });
    assert!(msg.contains("stale") || msg.contains("epoch"), "{msg}");

    // A range of another tape is refused.
    let other = Tape::<f64>::new();
    let theirs = other.vars([1.0]);
    let msg = panic_message(|| {
        g.items(&theirs);
    });
    assert!(msg.contains("belongs to tape"), "{msg}");
}

#[test]
fn an_empty_range_has_no_gradients() {
    let tape = Tape::<f64>::new();
    let none = tape.vars([]);
    assert!(none.is_empty());
    let g = (tape.var(1.0) * 3.0).backward();
    assert!(g.items(&none).is_empty());
}
