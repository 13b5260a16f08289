//! Record once, replay many times: new leaf values, the recorded scalar
//! program re-run in place, bit for bit what a fresh recording gives, and
//! refused wherever a replay could silently differ.

use proptest::prelude::*;
use tapegrad::tape::ReplayError;
use tapegrad::{Tape, Var};

/// One step of a random scalar program: an op and the earlier values it
/// reads (indices taken modulo the values so far).
#[derive(Clone, Debug)]
struct Step {
    op: u8,
    a: usize,
    b: usize,
    c: f64,
}

const OPS: u8 = 22;

fn apply<'t>(s: &Step, x: Var<'t, f64>, y: Var<'t, f64>) -> Var<'t, f64> {
    match s.op {
        0 => x + y,
        1 => x - y,
        2 => x * y,
        3 => x / (y.square() + 1.0),
        4 => x.tanh(),
        5 => x.sin(),
        6 => (x * 0.3).exp(),
        7 => x.square(),
        8 => x.sigmoid(),
        9 => x * s.c + 0.5,
        10 => (x.square() + 1.0).powf(s.c),
        11 => x.maximum(y),
        12 => x.minimum(y),
        13 => x.relu(),
        14 => x.abs(),
        15 => (x.square() + 0.1).sqrt(),
        16 => (x.square() + 0.1).ln(),
        17 => x.atan2(y),
        18 => x.softplus(),
        19 => x.clamp(-0.5, 0.7),
        20 => x.leaky_relu(),
        _ => x.cos() - y.sinh() * 0.1,
    }
}

/// Records the program on fresh leaves with `values`; the output sums
/// every value, so that every node reaches it.
fn record<'t>(
    tape: &'t Tape<f64>,
    values: &[f64],
    program: &[Step],
) -> (Vec<Var<'t, f64>>, Vec<Var<'t, f64>>, Var<'t, f64>) {
    let leaves: Vec<Var<'t, f64>> = values.iter().map(|&v| tape.var(v)).collect();
    let mut all = leaves.clone();
    for s in program {
        let (x, y) = (all[s.a % all.len()], all[s.b % all.len()]);
        all.push(apply(s, x, y));
    }
    let out = all.iter().skip(1).fold(all[0], |acc, &v| acc + v);
    (leaves, all, out)
}

fn step() -> impl Strategy<Value = Step> {
    (0..OPS, 0usize..64, 0usize..64, -1.5f64..1.5).prop_map(|(op, a, b, c)| Step { op, a, b, c })
}

/// Records the program on leaves with `values` (every third a constant,
/// so that some nodes need no gradient); the output is node `root` (taken
/// modulo the nodes) plus every `stride`-th node below it, so that some
/// nodes do not reach it.
fn record_partial<'t>(
    tape: &'t Tape<f64>,
    values: &[f64],
    program: &[Step],
    (root, stride): (usize, usize),
) -> (Vec<Var<'t, f64>>, Vec<Var<'t, f64>>, Var<'t, f64>) {
    let leaves: Vec<Var<'t, f64>> = values
        .iter()
        .enumerate()
        .map(|(k, &v)| {
            if k % 3 == 2 {
                tape.constant(v)
            } else {
                tape.var(v)
            }
        })
        .collect();
    let mut all = leaves.clone();
    for s in program {
        let (x, y) = (all[s.a % all.len()], all[s.b % all.len()]);
        all.push(apply(s, x, y));
    }
    let root = root % all.len();
    let out = (0..root)
        .step_by(stride)
        .fold(all[root], |acc, k| acc + all[k]);
    (leaves, all, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Replaying with new values equals recording afresh with them: every
    /// node's value and every leaf's gradient, bit for bit.
    #[test]
    fn replay_equals_a_fresh_recording(
        program in prop::collection::vec(step(), 1..40),
        first in prop::collection::vec(-2.0f64..2.0, 3),
        second in prop::collection::vec(-2.0f64..2.0, 3),
    ) {
        let tape = Tape::new();
        let (leaves, nodes, out) = record(&tape, &first, &program);
        let _ = out.backward();
        for (leaf, &v) in leaves.iter().zip(&second) {
            tape.set_value(*leaf, v);
        }
        tape.replay().unwrap();
        let replayed = out.backward();
        let fresh_tape = Tape::new();
        let (fresh_leaves, fresh_nodes, fresh_out) = record(&fresh_tape, &second, &program);
        let fresh = fresh_out.backward();
        prop_assert_eq!(out.item().to_bits(), fresh_out.item().to_bits());
        for (l, f) in leaves.iter().zip(&fresh_leaves) {
            let (a, b) = (replayed[*l].item(), fresh[*f].item());
            prop_assert!(a.to_bits() == b.to_bits(), "gradient {a} vs fresh {b}");
        }
        // Every intermediate value too.
        for (i, (v, f)) in nodes.iter().zip(&fresh_nodes).enumerate() {
            let (a, b) = (v.item(), f.item());
            prop_assert!(a.to_bits() == b.to_bits(), "value {i}: {a} vs {b}");
        }
    }

    /// The same with constants among the leaves and an output that only
    /// part of the program reaches (some nodes get no gradient, some
    /// leaves a zero one), read back for every node: whether it has a
    /// gradient, and its bits. Replayed three times, so later backward
    /// passes reuse the walk worked out for the first.
    #[test]
    fn replay_equals_a_fresh_recording_for_any_output(
        program in prop::collection::vec(step(), 1..40),
        first in prop::collection::vec(-2.0f64..2.0, 5),
        second in prop::collection::vec(-2.0f64..2.0, 5),
        output in (0usize..64, 1usize..5),
    ) {
        let tape = Tape::new();
        let (leaves, nodes, out) = record_partial(&tape, &first, &program, output);
        prop_assume!(out.requires_grad());
        let _ = out.backward();
        for values in [&second, &first, &second] {
            for (leaf, &v) in leaves.iter().zip(values.iter()) {
                tape.set_value(*leaf, v);
            }
            tape.replay().unwrap();
            let replayed = out.backward();
            let fresh_tape = Tape::new();
            let (_, fresh_nodes, fresh_out) = record_partial(&fresh_tape, values, &program, output);
            let fresh = fresh_out.backward();
            prop_assert_eq!(out.item().to_bits(), fresh_out.item().to_bits());
            for (i, (v, f)) in nodes.iter().zip(&fresh_nodes).enumerate() {
                let (a, b) = (replayed.get(*v).map(|g| g.item()), fresh.get(*f).map(|g| g.item()));
                prop_assert_eq!(a.map(f64::to_bits), b.map(f64::to_bits), "node {}: {:?} vs {:?}", i, a, b);
            }
        }
    }
}

#[test]
fn a_chain_replayed_a_hundred_times_matches_each_fresh_recording() {
    let n = 500;
    fn chain(
        tape: &Tape<f64>,
        n: usize,
        scale: f64,
    ) -> (tapegrad::VarRange<'_, f64>, Var<'_, f64>) {
        let x = tape.var(0.5);
        let ws = tape.vars((0..n).map(|i| (0.5 + 0.001 * (i % 100) as f64) * scale));
        let bs = tape.vars((0..n).map(|i| 0.01 * (i % 7) as f64));
        let mut y = x;
        for i in 0..n {
            y = (y * ws.get(i) + bs.get(i)).tanh();
        }
        (ws, y)
    }
    let tape = Tape::new();
    let (ws, y) = chain(&tape, n, 1.0);
    for k in 1..=100 {
        let scale = 1.0 + 0.001 * k as f64;
        let w = |i: usize| (0.5 + 0.001 * (i % 100) as f64) * scale;
        // Both ways of giving new values: an array, or a map in place.
        if k % 2 == 0 {
            tape.set_values(&ws, &(0..n).map(w).collect::<Vec<_>>());
        } else {
            tape.update_values(&ws, |i, _| w(i));
        }
        tape.replay().unwrap();
        let g = y.backward();
        let fresh = Tape::new();
        let (fws, fy) = chain(&fresh, n, scale);
        let fg = fy.backward();
        assert_eq!(y.item().to_bits(), fy.item().to_bits(), "replay {k}");
        assert_eq!(g.items(&ws)[..], fg.items(&fws)[..], "replay {k}");
    }
}

#[test]
fn reading_a_value_mid_recording_refuses_the_replay() {
    let tape = Tape::<f64>::new();
    let x = tape.var(0.5);
    let y = x.sin();
    // The program branches on a value: a replay would keep this branch.
    let z = if y.item() > 0.0 { y * 2.0 } else { y * -1.0 };
    let err = tape.replay().unwrap_err();
    assert!(
        matches!(err, ReplayError::ReadDuringRecording { read_at: 2, len: 3 }),
        "{err}"
    );
    assert!(err.to_string().contains("control flow"), "{err}");
    // Reading after the last node is fine.
    let tape = Tape::<f64>::new();
    let x = tape.var(0.5);
    let z2 = x.sin() * 2.0;
    let _ = (z2.item(), z2.backward()[x].item());
    tape.set_value(x, 1.0);
    tape.replay().unwrap();
    assert_eq!(z2.item(), 1f64.sin() * 2.0);
    let _ = z;
}

#[test]
fn frozen_values_and_tensor_ops_refuse_the_replay() {
    // detach and no_grad freeze a computed value into a constant.
    for freeze in [0, 1] {
        let tape = Tape::<f64>::new();
        let x = tape.var(0.5);
        let c = if freeze == 0 {
            x.sin().detach()
        } else {
            tape.no_grad(|| x.sin())
        };
        let _y = c * x;
        let err = tape.replay().unwrap_err();
        assert!(
            matches!(err, ReplayError::ReadDuringRecording { .. }),
            "{err}"
        );
    }
    // A tensor op.
    let tape = Tape::<f64>::new();
    let v = tape.var(tapegrad::Tensor::from_vec(vec![1.0, 2.0], [2]));
    let _s = v.sum();
    let err = tape.replay().unwrap_err();
    assert_eq!(err, ReplayError::NotReplayable { node: 1, op: "sum" });
    assert!(err.to_string().contains("scalar"), "{err}");
}

#[test]
#[should_panic(expected = "is not a scalar leaf")]
fn only_scalar_leaves_take_new_values() {
    let tape = Tape::<f64>::new();
    let x = tape.var(0.5);
    let y = x.sin();
    tape.set_value(y, 1.0);
}

#[test]
fn constants_take_new_values_too() {
    let tape = Tape::<f64>::new();
    let (x, t) = (tape.var(2.0), tape.constant(1.0));
    let loss = (x - t).square();
    tape.set_value(t, 3.0);
    tape.replay().unwrap();
    assert_eq!(loss.item(), 1.0);
    assert_eq!(loss.backward()[x].item(), -2.0);
}

#[test]
fn an_update_sees_each_leaf_and_its_value() {
    let tape = Tape::<f64>::new();
    let w = tape.vars([1.0, 2.0, 4.0]);
    let y = w.iter().fold(tape.constant(0.0), |s, v| s + v);
    let mut seen = Vec::new();
    tape.update_values(&w, |k, v| {
        seen.push((k, v));
        v * 10.0
    });
    assert_eq!(seen, [(0, 1.0), (1, 2.0), (2, 4.0)]);
    // The recorded sum is stale until the replay.
    assert_eq!(y.item(), 7.0);
    tape.replay().unwrap();
    assert_eq!(y.item(), 70.0);
}

#[test]
#[should_panic(expected = "update_values: %0 belongs to another tape")]
fn an_update_refuses_another_tapes_leaves() {
    let (tape, other) = (Tape::<f64>::new(), Tape::<f64>::new());
    let w = other.vars([1.0, 2.0]);
    tape.update_values(&w, |_, v| v);
}

#[test]
#[should_panic(expected = "reset")]
fn an_update_refuses_leaves_from_before_a_reset() {
    let tape = Tape::<f64>::new();
    let w = tape.vars([1.0, 2.0]);
    tape.reset();
    let _ = tape.vars([3.0, 4.0]);
    tape.update_values(&w, |_, v| v);
}

#[test]
fn an_update_may_use_the_tape() {
    // More leaves than one chunk of the update, and an `f` that reads a
    // gradient and a value through the tape, as a careless optimiser would.
    let tape = Tape::<f64>::new();
    let n = 600;
    let w = tape.vars((0..n).map(|k| k as f64));
    let loss = w.iter().fold(tape.constant(0.0), |s, v| s + v * v);
    let g = loss.backward();
    let seen = loss.item();
    tape.update_values(&w, |k, v| {
        assert_eq!(loss.item(), seen, "the loss is not replayed mid-update");
        v - 0.5 * g[w.get(k)].item()
    });
    tape.replay().unwrap();
    // w − 0.5 · 2w = 0.
    assert_eq!(loss.item(), 0.0);
    assert!(loss.backward().items(&w).iter().all(|&d| d == 0.0));
}

#[test]
#[should_panic(expected = "update_values: the tape was reset while updating")]
fn an_update_that_resets_the_tape_fails_loudly() {
    let tape = Tape::<f64>::new();
    let w = tape.vars(vec![1.0; 300]);
    tape.update_values(&w, |k, v| {
        if k == 10 {
            tape.reset();
        }
        v
    });
}
