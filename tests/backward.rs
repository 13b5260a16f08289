//! The backward walk: fan-out, diamonds, shared inputs, repeated calls,
//! deep chains, constants, detach and no-grad scopes.

use tapegrad::{Tape, Tensor};

#[test]
fn fan_out_of_a_thousand_uses_sums_every_contribution() {
    let tape = Tape::<f64>::new();
    let x = tape.var(0.3);
    let h = x.sin(); // one intermediate, used 1000 times
    let mut acc = tape.constant(0.0);
    for i in 0..1000 {
        acc = acc + h * (i as f64);
    }
    let g = acc.backward();
    let want = 0.3f64.cos() * (0..1000).map(|i| i as f64).sum::<f64>();
    assert!((g[x].item() - want).abs() < 1e-9 * want.abs());
    assert!((g[h].item() - 499500.0).abs() < 1e-9);
}

#[test]
fn diamond_adds_both_paths() {
    // y = sin(x)·cos(x) through two branches that meet again.
    let tape = Tape::<f64>::new();
    let x = tape.var(0.7);
    let (a, b) = (x.sin(), x.cos());
    let y = a * b;
    let g = y.backward();
    assert!((g[x].item() - (2.0 * 0.7f64).cos()).abs() < 1e-15);
}

#[test]
fn node_used_as_both_inputs() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.5, -2.0], [2]));
    let y = (x * x).sum();
    assert_eq!(y.backward()[x].data(), &[3.0, -4.0]);
    let z = (x / x).sum(); // d/dx (x/x) = 0
    assert_eq!(z.backward()[x].data(), &[0.0, 0.0]);
}

#[test]
fn repeated_backward_gives_the_same_answer() {
    let tape = Tape::<f64>::new();
    let w = tape.var(Tensor::from_vec(vec![0.1, 0.2, 0.3], [3]));
    let loss = (w.tanh() * w).sum();
    let first = loss.backward()[w].clone();
    for _ in 0..3 {
        assert_eq!(loss.backward()[w], first);
    }
    // Recording more ops after a backward does not disturb the recording.
    let loss2 = loss * 2.0;
    let second = loss2.backward()[w].clone();
    for (a, b) in second.data().iter().zip(first.data()) {
        assert_eq!(*a, 2.0 * b);
    }
}

#[test]
fn deep_scalar_chain_does_not_overflow_the_stack() {
    // 10 million nodes with optimisations, 1 million in debug builds.
    let n = if cfg!(debug_assertions) {
        1_000_000
    } else {
        10_000_000
    };
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0);
    let mut y = x;
    for _ in 0..n - 1 {
        y = y * 1.0;
    }
    assert_eq!(tape.len(), n);
    // Each `y * 1.0` node: its value, flags and record (25 bytes) and the
    // op's two numbers (16); the rank bookkeeping adds 3/8 of a byte.
    let per_node = tape.bytes_used() as f64 / n as f64;
    assert!(per_node < 42.0, "{per_node} bytes per node");
    assert_eq!(y.backward()[x].item(), 1.0);
}

#[test]
fn scalar_nodes_take_a_few_bytes_each() {
    // W1's pattern: y ← tanh(y·w + b), the coefficients as leaf ranges.
    let n = 10_000;
    let tape = Tape::<f64>::new();
    let x = tape.var(0.5);
    let ws = tape.vars((0..n).map(|i| 0.5 + 0.001 * i as f64));
    let bs = tape.vars((0..n).map(|i| 0.01 * i as f64));
    let leaves = tape.bytes_used() as f64 / tape.len() as f64;
    let before = (tape.len(), tape.bytes_used());
    let mut y = x;
    for i in 0..n {
        y = (y * ws.get(i) + bs.get(i)).tanh();
    }
    let ops = (tape.bytes_used() - before.1) as f64 / (tape.len() - before.0) as f64;
    // A leaf: 8 bytes of value, 1 of flags; an op node adds its op and two
    // input indices (16). Not the 32-byte nodes of before, which made W1's
    // peak memory 203 MB at a million steps.
    assert!(leaves <= 9.5, "{leaves} bytes per leaf");
    assert!(ops <= 25.5, "{ops} bytes per op node");
    let g = y.backward();
    assert_eq!(g.items(&ws).len(), n);
}

#[test]
fn constants_get_no_gradient_and_unused_leaves_get_zeros() {
    let tape = Tape::<f64>::new();
    let x = tape.var(2.0);
    let c = tape.constant(3.0);
    let unused = tape.var(Tensor::ones([2]));
    let y = x * c;
    let g = y.backward();
    assert_eq!(g[x].item(), 3.0);
    assert!(g.get(c).is_none());
    assert!(!c.requires_grad());
    assert_eq!(g[unused].data(), &[0.0, 0.0]);
    // The scalar walk passes contributions to constant inputs too; they
    // must still read as "no gradient", also for ops on constants only.
    let cc = c * c;
    let g = (x * cc + cc.tanh()).backward();
    assert_eq!(g.item(x), 9.0);
    assert!(g.get(c).is_none() && g.get(cc).is_none());
}

#[test]
fn detach_and_no_grad_stop_the_flow() {
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let y = x * x.detach();
    assert_eq!(y.backward()[x].item(), 3.0);
    let before = tape.len();
    let z = tape.no_grad(|| (x * 2.0).exp());
    assert!(!z.requires_grad());
    assert_eq!(z.op_name(), "constant");
    assert_eq!(tape.len(), before + 2);
    assert!(tape.is_grad_enabled());
    let w = x * z;
    assert_eq!(w.backward()[x].item(), z.item());
}

#[test]
fn backward_with_a_seed_is_a_vector_jacobian_product() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    let y = x.square(); // Jacobian diag(2x)
    let g = y.backward_with(Tensor::from_vec(vec![1.0, 0.5, -1.0], [3]));
    assert_eq!(g[x].data(), &[2.0, 2.0, -6.0]);
}

#[test]
fn recorded_gradients_can_be_seeded_by_a_var() {
    // d/ds of (s · dy/dx) = dy/dx, with the seed a Var.
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::from_vec(vec![0.5, 1.5], [2]));
    let s = tape.var(Tensor::from_vec(vec![2.0, 3.0], [2]));
    let y = x.exp();
    let gx = y.backward_recorded_with(s)[x]; // s ⊙ e^x
    let g = gx.sum().backward();
    assert!((g[s].data()[1] - 1.5f64.exp()).abs() < 1e-12);
    assert!((g[x].data()[0] - 2.0 * 0.5f64.exp()).abs() < 1e-12);
}

#[test]
fn third_derivative_through_nested_recording() {
    let tape = Tape::<f64>::new();
    let x = tape.var(0.4);
    let y = x.tanh();
    let d1 = y.backward_recorded()[x];
    let d2 = d1.backward_recorded()[x];
    let d3 = d2.backward()[x].item();
    // tanh''' = -2 sech²(x) (1 - 3 tanh²(x))
    let t = 0.4f64.tanh();
    let want = -2.0 * (1.0 - t * t) * (1.0 - 3.0 * t * t);
    assert!((d3 - want).abs() < 1e-12, "{d3} vs {want}");
}

#[test]
fn reset_reuses_the_tape() {
    let tape = Tape::<f32>::new();
    for step in 0..3 {
        tape.reset();
        let x = tape.var(step as f32);
        let y = x * x;
        assert_eq!(y.backward()[x].item(), 2.0 * step as f32);
        assert_eq!(tape.len(), 2);
    }
}

#[test]
fn scalar_gradients_read_as_numbers_or_tensors_and_clip() {
    use tapegrad::nn::{clip_grad_norm, ParamStore};
    // A scalar parameter and a tensor one: scalar gradients live as plain
    // numbers, and every way of reading or changing them agrees.
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", Tensor::scalar(3.0));
    let w = params.add("w", Tensor::from_vec(vec![4.0], [1]));
    let tape = Tape::new();
    let (av, wv) = (params.var(&tape, a), params.var(&tape, w));
    let unused = tape.var(7.0);
    let mid = av * av; // intermediate scalar node
    let after = tape.var(1.0) * 2.0; // recorded after the output below
    let loss = mid * 0.5 + (wv.square() * 0.5).sum();
    let mut grads = loss.backward();
    assert_eq!(grads.item(av), 3.0);
    assert_eq!(grads[av].item(), 3.0);
    assert_eq!(grads.item(mid), 0.5);
    assert_eq!(grads[wv].data(), &[4.0]);
    assert_eq!(grads.item(wv), 4.0);
    assert_eq!(grads.item(unused), 0.0); // a leaf that does not reach: zero
    assert!(grads.get(after).is_none()); // recorded after the output
    assert_eq!(clip_grad_norm(&params, &mut grads, 1.0), 5.0);
    let (ga, gw) = (
        params.grad(&grads, a).unwrap(),
        params.grad(&grads, w).unwrap(),
    );
    assert!((ga.item() - 0.6).abs() < 1e-6 && (gw.data()[0] - 0.8).abs() < 1e-6);
    // Reading the clipped scalar as a number sees the clipped value too.
    assert!((grads.item(av) - 0.6).abs() < 1e-6);
}

#[test]
fn unreached_branches_pass_nothing_back() {
    // ln(0) has an infinite derivative; a branch the output never uses
    // must not turn x's gradient into NaN (0 · ∞).
    let tape = Tape::<f64>::new();
    let x = tape.var(0.0);
    let _dead = (x * 1.0).ln();
    let y = x * 3.0;
    assert_eq!(y.backward().item(x), 3.0);
}

/// `-1` names the last axis in every op that takes an axis, and gives the
/// same values and gradients as the positive index.
#[test]
fn negative_axes_mean_counting_from_the_end() {
    let x0 = tapegrad::Tensor::from_fn([2, 3, 4], |i| {
        (i[0] * 12 + i[1] * 4 + i[2]) as f64 * 0.1 - 1.0
    });
    type Op = for<'t> fn(tapegrad::Var<'t, f64>, i32) -> tapegrad::Var<'t, f64>;
    let ops: [(&str, Op); 9] = [
        ("sum_axis", |x, a| x.sum_axis(a, false)),
        ("mean_axis", |x, a| x.mean_axis(a, true)),
        ("max_axis", |x, a| x.max_axis(a, false)),
        ("logsumexp", |x, a| x.logsumexp(a, false)),
        ("softmax", |x, a| x.softmax(a)),
        ("log_softmax", |x, a| x.log_softmax(a)),
        ("narrow", |x, a| x.narrow(a, 1, 1)),
        ("index_select", |x, a| x.index_select(a, &[1, 0])),
        ("stack", |x, a| tapegrad::Var::stack(&[x, x * 2.0], a)),
    ];
    for (name, op) in ops {
        for (neg, pos) in [(-1, 2), (-2, 1), (-3, 0)] {
            let tape = tapegrad::Tape::<f64>::new();
            let x = tape.var(x0.clone());
            let (a, b) = (op(x, neg), op(x, pos));
            // stack has one more axis to place the new one among.
            let b = if name == "stack" { op(x, pos + 1) } else { b };
            assert_eq!(a.value(), b.value(), "{name} axis {neg}");
            let (ga, gb) = ((a.tanh().sum()).backward(), (b.tanh().sum()).backward());
            assert_eq!(ga[x], gb[x], "{name} axis {neg}");
        }
    }
    assert_eq!(x0.argmax(-1), x0.argmax(2));
}

/// Coordinates out of a vector and back: `at` and `from_scalars` carry
/// gradients both ways.
#[test]
fn coordinates_as_scalars_and_back() {
    let tape = tapegrad::Tape::<f64>::new();
    let x = tape.var(tapegrad::Tensor::from_vec(vec![1.5, -2.0, 0.5], [3]));
    let (a, b, c) = (x.at(0), x.at(1), x.at(2));
    assert_eq!(a.shape().len(), 0);
    let v = tapegrad::Var::from_scalars(&[a * b, b * c, c]);
    assert_eq!(v.value().data(), &[-3.0, -1.0, 0.5]);
    let g = v.sum().backward();
    // d/dx (x0 x1 + x1 x2 + x2) = (x1, x0 + x2, x1 + 1)
    assert_eq!(g[x].data(), &[-2.0, 2.0, -1.0]);
    let m = tape.var(tapegrad::Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
    assert_eq!(m.at(1).value().data(), &[3.0, 4.0]);
}

/// The hook sees each leaf that needs a gradient once, when the walk
/// reaches it (every later node has passed its contribution back), with
/// the final gradient; scalar and tensor leaves alike, unreached leaves
/// and constants not at all; the gradients returned are backward()'s.
#[test]
fn backward_with_hook_reports_each_final_leaf_gradient_once() {
    let tape = Tape::<f64>::new();
    let w = tape.var(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
    let s = tape.var(0.5);
    let unused = tape.var(Tensor::ones([2]));
    let c = tape.constant(Tensor::from_vec(vec![4.0, 5.0, 6.0], [3]));
    let b = tape.var(Tensor::from_vec(vec![0.1, 0.2, 0.3], [3]));
    // w is used early and late, so its gradient is complete only at the end.
    let h = (w * c + b).tanh() * s;
    let y = (h * w).sum() + (w.square().sum() * s);
    let mut seen = Vec::new();
    let hooked = y.backward_with_hook(|leaf, g| seen.push((leaf.index(), g.to_vec())));
    let plain = y.backward();
    let order: Vec<usize> = seen.iter().map(|(i, _)| *i).collect();
    assert_eq!(order, [b.index(), s.index(), w.index()]);
    for (leaf, g) in [(w, &seen[2].1), (s, &seen[1].1), (b, &seen[0].1)] {
        assert_eq!(g, &plain[leaf].to_vec());
        assert_eq!(hooked[leaf].to_vec(), plain[leaf].to_vec());
    }
    assert!(!order.contains(&unused.index()) && !order.contains(&c.index()));
    assert_eq!(hooked[unused].to_vec(), [0.0, 0.0]);
}

#[test]
fn reused_gradient_storage_starts_from_zero() {
    // The walk reuses the last walk's storage without clearing it: every
    // slot must still read as a sum from zero, on the eager and the
    // replayed walk alike.
    let tape = Tape::<f64>::new();
    let x = tape.var(3.0);
    let y = x * x * 5.0 + x;
    assert_eq!(y.backward().item(x), 31.0);
    tape.reset();
    let a = tape.var(3.0);
    let b = tape.var(1.0);
    let y = b * b + b.tanh() * 0.0;
    let g = y.backward();
    assert_eq!((g.item(a), g.item(b)), (0.0, 2.0));
    drop(g);
    tape.set_value(b, 2.0);
    tape.replay().unwrap();
    let g = y.backward();
    assert_eq!((g.item(a), g.item(b)), (0.0, 4.0));
    assert!(g.get(a).is_some_and(|d| d.item() == 0.0));
}
