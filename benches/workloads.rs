//! Criterion benches for the W1, W1r, W1b, W2, W6 and W7 workloads of the performance
//! issue (W3 and W4 are in `grad_operators.rs`). Each checks its values
//! once before timing. Run: `cargo bench --bench workloads`.

#[path = "common/workloads.rs"]
mod workloads;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tapegrad::Tape;
use workloads::*;

fn check_close(what: &str, got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * want.abs(),
        "{what}: {got} vs {want}"
    );
}

fn bench(c: &mut Criterion) {
    // W1: 100,000 steps, 3 op nodes each.
    let tape = Tape::<f64>::new();
    let (loss, sw, sb, _) = w1(&tape, 100_000);
    check_close("W1 loss", loss, W1_LOSS, 1e-12);
    check_close("W1 sum dw", sw, W1_SUM_DW, 1e-9);
    check_close("W1 sum db", sb, W1_SUM_DB, 1e-9);
    let mut g = c.benchmark_group("w1_scalar_chain");
    g.sample_size(20);
    g.throughput(Throughput::Elements(300_000)); // op nodes
    g.bench_function("n_100000", |b| b.iter(|| w1_run(&tape, 100_000, keep)));
    // The floor: the same chain by hand, no tape (see docs/performance.md).
    let mut ys = ByHand::default();
    let (loss, sw, sb, _) = w1_by_hand(100_000, &mut ys);
    check_close("W1 by hand loss", loss, W1_LOSS, 1e-12);
    check_close("W1 by hand sum dw", sw, W1_SUM_DW, 1e-9);
    check_close("W1 by hand sum db", sb, W1_SUM_DB, 1e-9);
    g.bench_function("by_hand_no_tape", |b| {
        b.iter(|| w1_by_hand_run(100_000, 1.0, &mut ys, keep))
    });
    g.finish();

    // W1r: W1 recorded once, then per iteration new w (scaled by
    // 1 + 0.001·k) and b, replayed forward and backward; and by hand.
    let tape = Tape::<f64>::new();
    let mut w1r = W1r::record(&tape, 100_000);
    let (got, want) = (w1r.replay(7), w1_by_hand_scaled(100_000, 1.007, &mut ys));
    check_close("W1r loss", got.0, want.0, 1e-12);
    check_close("W1r sum dw", got.1, want.1, 1e-9);
    let mut g = c.benchmark_group("w1r_replay");
    g.sample_size(20);
    g.throughput(Throughput::Elements(300_000));
    // Each also with subnormals flushed to zero, as XLA runs (the adjoints
    // of the scaled chains otherwise sit at 4.9e-324 for most steps and
    // every multiply takes a microcode assist; docs/performance.md).
    for (flush, replay, by_hand) in [
        (false, "replay", "by_hand_no_tape"),
        (true, "replay_flushed", "by_hand_flushed"),
    ] {
        let mut k = 0;
        g.bench_function(replay, |b| {
            flushed_if(flush, || {
                b.iter(|| {
                    k = k % 100 + 1;
                    w1r.replay_run(k, keep)
                })
            })
        });
        let mut k = 0;
        g.bench_function(by_hand, |b| {
            flushed_if(flush, || {
                b.iter(|| {
                    k = k % 100 + 1;
                    w1_by_hand_run(100_000, 1.0 + 0.001 * k as f64, &mut ys, keep)
                })
            })
        });
    }
    g.finish();

    // W1b, scalar and tensor mode.
    let (xs, ts) = w1b_data();
    let mut p = w1b_params();
    let tape = Tape::<f64>::new();
    check_close(
        "W1b loss at start",
        w1b_scalar_step(&tape, &mut p, &xs, &ts),
        W1B_LOSS_0,
        1e-12,
    );
    check_close(
        "W1b loss after 1 step",
        w1b_scalar_step(&tape, &mut p, &xs, &ts),
        W1B_LOSS_1,
        1e-12,
    );
    let mut t = W1bTensor::new();
    let mut last = 0.0;
    for i in 0..=100 {
        last = t.step(&tape);
        if i == 0 {
            check_close("W1b tensor loss at start", last, W1B_LOSS_0, 1e-12);
        }
    }
    check_close("W1b tensor loss after 100 steps", last, W1B_LOSS_100, 1e-10);
    let mut g = c.benchmark_group("w1b_scalar_mlp");
    g.bench_function("scalar_mode_step", |b| {
        b.iter(|| black_box(w1b_scalar_step(&tape, &mut p, &xs, &ts)))
    });
    g.bench_function("tensor_mode_step", |b| b.iter(|| black_box(t.step(&tape))));
    // Scalar mode recorded once, replayed each step (its own tape).
    let replay_tape = Tape::<f64>::new();
    let mut replayed = W1bReplayed::record(&replay_tape, &p, &xs, &ts);
    g.bench_function("scalar_mode_replayed_step", |b| {
        b.iter(|| black_box(replayed.step(&mut p)))
    });
    g.finish();

    // W2 at three sizes. Each timed step follows the workload's definition
    // (10 warm-up steps from a fresh model, then at most 50 timed): trained
    // for thousands of steps on its random labels the model memorises them,
    // its probabilities and gradients underflow to subnormal numbers, and
    // every step gets 2-3x slower, which would measure the CPU's subnormal
    // arithmetic rather than the engine.
    let tape = Tape::<f32>::new();
    let mut g = c.benchmark_group("w2_mlp_train");
    for (name, hidden, batch, samples) in [
        ("small", 64, 32, 30),
        ("medium", 256, 128, 20),
        ("large", 1024, 512, 10),
    ] {
        let mut w = W2::new(hidden, batch);
        let first = w.step(&tape);
        assert!(
            first.is_finite() && (first - 10f32.ln()).abs() < 1.0,
            "W2 {name}: initial loss {first}"
        );
        g.sample_size(samples);
        g.throughput(Throughput::Elements((6 * batch * w.weights()) as u64)); // flops per step
        g.bench_with_input(
            BenchmarkId::new(name, format!("H{hidden}_B{batch}")),
            &(),
            |b, _| {
                b.iter_custom(|iters| {
                    let mut total = std::time::Duration::ZERO;
                    let mut done = 0;
                    while done < iters {
                        let mut w = W2::new(hidden, batch);
                        for _ in 0..10 {
                            w.step(&tape);
                        }
                        for _ in 0..(iters - done).min(50) {
                            let t = std::time::Instant::now();
                            black_box(w.step(&tape));
                            total += t.elapsed();
                            done += 1;
                        }
                    }
                    total
                })
            },
        );
    }
    g.finish();

    // W6: one convolution, forward and both gradients; W7: a CNN step.
    let mut g = c.benchmark_group("w6_conv_fwd_bwd");
    for (case, &(name, b, ch, o, side)) in W6_CASES.iter().enumerate() {
        let w6 = W6::<f32>::new(b, ch, o, side);
        check_w6(case, w6.step(&tape));
        g.sample_size(20);
        g.throughput(Throughput::Elements(6 * w6.macs() as u64)); // flops
        g.bench_function(name.replace(' ', "_"), |bch| {
            bch.iter(|| black_box(w6.step(&tape)))
        });
    }
    g.finish();
    let mut w7 = W7::new();
    check_w7(w7.step(&tape));
    let mut g = c.benchmark_group("w7_cnn_train");
    g.sample_size(20);
    g.bench_function("mnist_cnn_b64", |b| b.iter(|| black_box(w7.step(&tape))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
