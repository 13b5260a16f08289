//! Times the performance issue's workloads in tapegrad and prints one JSON
//! object per workload (median milliseconds of repeated runs). Used by
//! `benches/compare/run.sh`; the criterion benches are the reference
//! measurement.
//!
//! ```text
//! cargo run --release --example workload_times [-- --quick]
//! ```

#[path = "../benches/common/workloads.rs"]
mod workloads;

use std::time::Instant;
use tapegrad::Tape;
use workloads::*;

fn median_ms(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    // `--w1-only N`: one W1 run of N steps and nothing else, for measuring
    // peak memory from outside (`/usr/bin/time -v`).
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--w1-only") {
        let n: usize = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--w1-only N");
        let (loss, ..) = w1(&Tape::<f64>::new(), n);
        println!("{{\"workload\": \"W1 N={n}\", \"loss\": {loss}}}");
        return;
    }
    // `--w1-loop K`: W1 (N = 100,000) K times on one tape, for a profiler.
    if let Some(i) = args.iter().position(|a| a == "--w1-loop") {
        let k: usize = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .expect("--w1-loop K");
        let tape = Tape::<f64>::new();
        for _ in 0..k {
            w1(&tape, 100_000);
        }
        return;
    }
    // `--only NAME`: time one workload (w1, w1r, w1b, w1b-replayed, w1bt for
    // W1b in tensor mode, w2s, w2m, w2l, w3h, w3v, w4, w6a, w6b, w6c, w7;
    // NAME-flushed with subnormals flushed to zero) in a loop for a
    // profiler: for three seconds, or `--steps K` steps (a fixed amount of
    // work, for instruction counts under callgrind).
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let steps = args.iter().position(|a| a == "--steps").map(|j| {
            args.get(j + 1)
                .and_then(|k| k.parse().ok())
                .expect("--steps K")
        });
        profile_one(args.get(i + 1).map(String::as_str).unwrap_or(""), steps);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let reps = |n: usize| if quick { 3 } else { n };
    let tape = Tape::<f64>::new();
    let n = 100_000;
    let (loss, ..) = w1(&tape, n);
    assert!((loss - W1_LOSS).abs() < 1e-12);
    let ms = median_ms(reps(20), || {
        w1_run(&tape, n, keep);
    });
    println!(
        "{{\"workload\": \"W1\", \"ms\": {ms:.4}, \"ns_per_op_node\": {:.2}}}",
        ms * 1e6 / (3.0 * n as f64)
    );

    // The same chain by hand, no tape: how much of W1 the system's tanh
    // takes on its own (see docs/performance.md).
    let mut ys = ByHand::default();
    let (loss, sum_dw, ..) = w1_by_hand(n, &mut ys);
    assert!((loss - W1_LOSS).abs() < 1e-12 && (sum_dw - W1_SUM_DW).abs() < 1e-9);
    let ms = median_ms(reps(20), || {
        w1_by_hand_run(n, 1.0, &mut ys, keep);
    });
    println!(
        "{{\"workload\": \"W1 by hand\", \"ms\": {ms:.4}, \"ns_per_op_node\": {:.2}}}",
        ms * 1e6 / (3.0 * n as f64)
    );

    // W1r: recorded once; per replay, new w and b, forward and backward.
    let mut w1r = W1r::record(&tape, n);
    for k in [0, 1, 100] {
        let (got, want) = (
            w1r.replay(k),
            w1_by_hand_scaled(n, 1.0 + 0.001 * k as f64, &mut ys),
        );
        assert!((got.0 - want.0).abs() < 1e-12 && (got.1 - want.1).abs() < 1e-9);
    }
    // Per replay, over replays k = 1..100; the by-hand lines run the same
    // chains with no tape. "flushed": with subnormals flushed to zero, as
    // XLA's CPU backend runs (the scaled chains' adjoints otherwise sit at
    // 4.9e-324 for most steps; see docs/performance.md).
    let mut w1r_line = |name: &str, flush: bool, hand: bool| {
        let mut replays = || {
            for k in 1..=100 {
                if hand {
                    w1_by_hand_run(n, 1.0 + 0.001 * k as f64, &mut ys, keep);
                } else {
                    w1r.replay_run(k, keep);
                }
            }
        };
        let ms = median_ms(reps(20), || flushed_if(flush, &mut replays)) / 100.0;
        println!(
            "{{\"workload\": \"{name}\", \"ms\": {ms:.4}, \"ns_per_op_node\": {:.2}}}",
            ms * 1e6 / (3.0 * n as f64)
        );
    };
    w1r_line("W1r", false, false);
    w1r_line("W1r by hand", false, true);
    w1r_line("W1r flushed", true, false);
    w1r_line("W1r flushed by hand", true, true);

    let (xs, ts) = w1b_data();
    let mut p = w1b_params();
    let ms = median_ms(reps(50), || {
        w1b_scalar_step(&tape, &mut p, &xs, &ts);
    });
    println!("{{\"workload\": \"W1b scalar\", \"ms\": {ms:.4}}}");
    // The same steps on a tape recorded once and replayed: the same losses.
    let (mut p, mut fresh) = (w1b_params(), w1b_params());
    let replay_tape = Tape::<f64>::new();
    let mut replayed = W1bReplayed::record(&replay_tape, &p, &xs, &ts);
    for _ in 0..3 {
        let want = w1b_scalar_step(&tape, &mut fresh, &xs, &ts);
        assert_eq!(replayed.step(&mut p).to_bits(), want.to_bits());
    }
    let ms = median_ms(reps(50), || {
        replayed.step(&mut p);
    });
    println!("{{\"workload\": \"W1b scalar replayed\", \"ms\": {ms:.4}}}");
    let mut t = W1bTensor::new();
    let ms = median_ms(reps(500), || {
        t.step(&tape);
    });
    println!("{{\"workload\": \"W1b tensor\", \"ms\": {ms:.4}}}");

    let tape32 = Tape::<f32>::new();
    for (name, hidden, batch) in [
        ("W2 small", 64, 32),
        ("W2 medium", 256, 128),
        ("W2 large", 1024, 512),
    ] {
        let mut w = W2::new(hidden, batch);
        for _ in 0..10 {
            w.step(&tape32);
        }
        let ms = median_ms(reps(50), || {
            w.step(&tape32);
        });
        let gflops = 6.0 * batch as f64 * w.weights() as f64 / (ms * 1e6);
        println!("{{\"workload\": \"{name}\", \"ms\": {ms:.4}, \"gflops\": {gflops:.2}}}");
    }

    for (case, &(name, b, c, o, side)) in W6_CASES.iter().enumerate() {
        let w6 = W6::<f32>::new(b, c, o, side);
        check_w6(case, w6.step(&tape32));
        let ms = median_ms(reps(30), || {
            w6.step(&tape32);
        });
        let gflops = 6.0 * w6.macs() as f64 / (ms * 1e6);
        println!("{{\"workload\": \"{name}\", \"ms\": {ms:.4}, \"gflops\": {gflops:.2}}}");
    }
    let mut w7 = W7::new();
    let first = w7.step(&tape32);
    check_w7(first);
    let ms = median_ms(reps(30), || {
        w7.step(&tape32);
    });
    println!("{{\"workload\": \"W7 cnn step\", \"ms\": {ms:.4}}}");

    use tapegrad::grad::{hessian, hvp, jacobian};
    use tapegrad::Tensor;
    let (x0, rosen) = (w3_start(), rosenbrock);
    let ones = Tensor::ones([100]);
    let ms = median_ms(reps(200), || {
        hessian(rosen, &x0);
    });
    println!("{{\"workload\": \"W3 hessian\", \"ms\": {ms:.4}}}");
    let ms = median_ms(reps(2000), || {
        hvp(rosen, &x0, &ones);
    });
    println!("{{\"workload\": \"W3 hvp\", \"ms\": {ms:.5}}}");
    let w4 = W4::new();
    let x = w4.x.clone();
    let ms = median_ms(reps(50), || {
        jacobian(|x| w4.layer(x), &x);
    });
    println!("{{\"workload\": \"W4 jacobian\", \"ms\": {ms:.4}}}");
}

/// Runs one workload for about three seconds (for `perf record`), or for
/// `limit` steps.
fn profile_one(name: &str, limit: Option<usize>) {
    use tapegrad::grad::{hessian, jacobian};
    use tapegrad::Tensor;
    let start = Instant::now();
    let mut steps = 0usize;
    // `NAME-flushed`: with subnormals flushed to zero (W1r's line).
    let (name, flush) = match name.strip_suffix("-flushed") {
        Some(name) => (name, true),
        None => (name, false),
    };
    let mut run = |f: &mut dyn FnMut()| {
        flushed_if(flush, || {
            while limit.map_or(start.elapsed().as_secs_f64() < 3.0, |n| steps < n) {
                f();
                steps += 1;
            }
        })
    };
    let tape = Tape::<f64>::new();
    let tape32 = Tape::<f32>::new();
    match name {
        "w1" => run(&mut || {
            w1_run(&tape, 100_000, keep);
        }),
        "w1r" | "w1r-hand" | "w1-hand" => {
            let n = 100_000;
            let mut ys = ByHand::default();
            let mut w1r = W1r::record(&tape, n);
            let mut k = 0;
            run(&mut || {
                k += 1;
                match name {
                    "w1r" => w1r.replay_run(k, keep),
                    "w1r-hand" => w1_by_hand_run(n, 1.0 + 0.001 * k as f64, &mut ys, keep),
                    _ => w1_by_hand_run(n, 1.0, &mut ys, keep),
                };
            });
        }
        "w1b" => {
            let (xs, ts) = w1b_data();
            let mut p = w1b_params();
            run(&mut || {
                w1b_scalar_step(&tape, &mut p, &xs, &ts);
            });
        }
        "w1b-replayed" => {
            let (xs, ts) = w1b_data();
            let mut p = w1b_params();
            let mut replayed = W1bReplayed::record(&tape, &p, &xs, &ts);
            run(&mut || {
                replayed.step(&mut p);
            });
        }
        "w1bt" => {
            let mut t = W1bTensor::new();
            run(&mut || {
                t.step(&tape);
            });
        }
        "w2s" | "w2m" | "w2l" => {
            let (h, b) = match name {
                "w2s" => (64, 32),
                "w2m" => (256, 128),
                _ => (1024, 512),
            };
            // A fresh model every 60 steps, as the bench does: a model that
            // has memorised its random labels slows down (subnormals).
            let mut w = W2::new(h, b);
            let mut k = 0;
            run(&mut || {
                k += 1;
                if k % 60 == 0 {
                    w = W2::new(h, b);
                }
                w.step(&tape32);
            });
        }
        "w3h" | "w3v" => {
            let x0 = w3_start();
            let ones = Tensor::ones([100]);
            run(&mut || {
                if name == "w3h" {
                    hessian(rosenbrock, &x0);
                } else {
                    tapegrad::grad::hvp(rosenbrock, &x0, &ones);
                }
            });
        }
        "w4" => {
            let w4 = W4::new();
            run(&mut || {
                jacobian(|x| w4.layer(x), &w4.x);
            });
        }
        "w6a" | "w6b" | "w6c" => {
            let case = (name.as_bytes()[2] - b'a') as usize;
            let (_, b, c, o, side) = W6_CASES[case];
            let w6 = W6::<f32>::new(b, c, o, side);
            run(&mut || {
                w6.step(&tape32);
            });
        }
        "w7" => {
            let mut w7 = W7::new();
            run(&mut || {
                w7.step(&tape32);
            });
        }
        other => {
            panic!("--only: unknown workload {other:?} (w1, w1r, w1r-hand, w1-hand, w1b, w1b-replayed, w1bt, w2s, w2m, w2l, w3h, w3v, w4, w6a, w6b, w6c, w7)")
        }
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    println!("{name}: {steps} steps, {ms:.4} ms each");
}
