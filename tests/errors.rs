//! Mistakes in building a graph panic at the caller's line with a message
//! naming the op, the shapes and the nodes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use tapegrad::{Tape, Tensor};

thread_local! {
    static LAST: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `f`, expecting a panic; returns its message and the file it points at.
fn panic_of(f: impl FnOnce()) -> (String, String) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let file = info
                .location()
                .map(|l| l.file().to_string())
                .unwrap_or_default();
            eprintln!("panic at {file}: {msg}");
            LAST.with(|l| *l.borrow_mut() = Some((msg, file)));
        }))
    });
    let r = catch_unwind(AssertUnwindSafe(f));
    assert!(r.is_err(), "expected a panic");
    LAST.with(|l| l.borrow_mut().take())
        .expect("panic recorded")
}

#[test]
fn broadcast_mismatch_names_op_shapes_and_nodes_at_the_callers_line() {
    let tape = Tape::<f32>::new();
    let a = tape.var(Tensor::zeros([2, 3]));
    let b = tape.var(Tensor::zeros([4]));
    let (msg, file) = panic_of(|| {
        let _ = a + b;
    });
    assert_eq!(
        msg,
        "add: shapes do not broadcast: %0 with shape [2, 3] and %1 with shape [4]"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
    let (msg, _) = panic_of(|| {
        let _ = a * b;
    });
    assert!(msg.starts_with("mul: shapes do not broadcast"));
}

#[test]
fn matmul_inner_dimension_mismatch() {
    let tape = Tape::<f64>::new();
    let a = tape.var(Tensor::zeros([2, 3]));
    let b = tape.var(Tensor::zeros([2, 3]));
    let (msg, file) = panic_of(|| {
        let _ = a.matmul(b);
    });
    assert_eq!(
        msg,
        "matmul: inner dimensions differ: %0 with shape [2, 3] and %1 with shape [2, 3]"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
}

#[test]
fn reshape_axis_and_index_errors() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([2, 3]));
    let (msg, _) = panic_of(|| {
        let _ = x.reshape([4]);
    });
    assert_eq!(
        msg,
        "reshape: cannot view 6 elements as shape [4]: %0 with shape [2, 3]"
    );
    let (msg, file) = panic_of(|| {
        let _ = x.sum_axis(2, false);
    });
    assert_eq!(
        msg,
        "sum_axis: axis 2 is out of range for %0 with shape [2, 3] (2 dimensions; \
         axes run from 0 to 1, or from -2 to -1 counted from the end)"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
    let (msg, _) = panic_of(|| {
        let _ = x.softmax(-3);
    });
    assert!(
        msg.starts_with("softmax: axis -3 is out of range for %0"),
        "{msg}"
    );
    let (msg, file) = panic_of(|| {
        let _ = x.at(2);
    });
    assert_eq!(
        msg,
        "at: index 2 is out of range (it needs an axis 0 longer than 2): %0 with shape [2, 3]"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
    let (msg, _) = panic_of(|| {
        let _ = tapegrad::Var::from_scalars(&[x.at(0).at(0), x]);
    });
    assert_eq!(
        msg,
        "from_scalars: every part must be a scalar (0-d): %0 with shape [2, 3]"
    );
    let (msg, _) = panic_of(|| {
        let _ = x.index_select(1, &[0, 3]);
    });
    assert_eq!(
        msg,
        "index_select: index 3 is out of range for axis 1 of %0 with shape [2, 3] (length 3)"
    );
}

#[test]
fn stale_handle_after_reset_is_detected() {
    let tape = Tape::<f64>::new();
    let x = tape.var(1.0);
    tape.reset();
    let _y = tape.var(5.0); // reuses index 0: must not be read through x
    let (msg, file) = panic_of(|| {
        let _ = x.tanh();
    });
    assert!(
        msg.starts_with("stale Var: node %0 was recorded before the tape was reset"),
        "{msg}"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
}

#[test]
fn vars_from_different_tapes_do_not_mix() {
    let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
    let a = t1.var(1.0);
    let b = t2.var(2.0);
    let (msg, _) = panic_of(|| {
        let _ = a + b;
    });
    assert!(
        msg.starts_with("add: inputs %0 and %0 belong to different tapes"),
        "{msg}"
    );
    let g = (a * a).backward();
    let (msg, _) = panic_of(|| {
        let _ = g[b].item();
    });
    assert!(msg.contains("belongs to tape"), "{msg}");
}

#[test]
fn backward_needs_a_scalar_or_a_matching_seed() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::ones([3]));
    let (msg, _) = panic_of(|| {
        let _ = x.exp().backward();
    });
    assert!(msg.contains("use backward_with(seed)"), "{msg}");
    let (msg, _) = panic_of(|| {
        let _ = x.exp().backward_with(Tensor::ones([2]));
    });
    assert_eq!(
        msg,
        "backward_with: seed of shape [2] does not match output %2 of shape [3]"
    );
}

#[test]
fn convolution_mistakes_name_the_op_and_shapes_at_the_callers_line() {
    use tapegrad::ops::Pool2d;
    use tapegrad::tensor::Conv2dGeom;
    let tape = Tape::<f32>::new();
    let x = tape.var(Tensor::zeros([2, 3, 4, 4]));
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, &'a [&'a str]);
    let cases: [Case; 4] = [
        (
            "wrong channel count",
            Box::new(|| {
                let _ = x.conv2d(tape.var(Tensor::zeros([8, 2, 3, 3])), Conv2dGeom::default());
            }),
            &["conv2d", "[2, 3, 4, 4]", "[8, 2, 3, 3]", "(8, 3, kh, kw)"],
        ),
        (
            "kernel larger than the padded input",
            Box::new(|| {
                let geom = Conv2dGeom {
                    padding: [0, 1],
                    ..Default::default()
                };
                let _ = x.conv2d(tape.var(Tensor::zeros([8, 3, 5, 5])), geom);
            }),
            &["conv2d", "5×5 kernel", "does not fit the padded 4×4 input"],
        ),
        (
            "groups that do not divide the channels",
            Box::new(|| {
                let geom = Conv2dGeom {
                    groups: 2,
                    ..Default::default()
                };
                let _ = x.conv2d(tape.var(Tensor::zeros([4, 1, 3, 3])), geom);
            }),
            &["conv2d", "3 input channels", "groups = 2"],
        ),
        (
            "pooling window larger than the input",
            Box::new(|| {
                let _ = x.max_pool2d(Pool2d::square(5));
            }),
            &["max_pool2d", "[2, 3, 4, 4]", "window does not fit"],
        ),
    ];
    for (what, f, words) in cases {
        let (msg, file) = panic_of(f);
        for w in words {
            assert!(msg.contains(w), "{what}: {w:?} missing from {msg:?}");
        }
        assert!(
            file.ends_with("tests/errors.rs"),
            "{what}: points at {file}"
        );
    }
}

#[test]
fn clamp_with_lo_above_hi_panics_at_the_callers_line() {
    let tape = Tape::<f64>::new();
    let x = tape.var(Tensor::zeros([2, 2]));
    let (msg, file) = panic_of(|| {
        let _ = x.clamp(1.0, -1.0);
    });
    assert_eq!(
        msg,
        "clamp: needs lo <= hi, got lo = 1, hi = -1 (input of shape [2, 2])"
    );
    assert!(file.ends_with("tests/errors.rs"), "points at {file}");
    let (msg, _) = panic_of(|| {
        let _ = x.clamp(f64::NAN, 1.0);
    });
    assert!(
        msg.starts_with("clamp: needs lo <= hi, got lo = NaN"),
        "{msg}"
    );
}
