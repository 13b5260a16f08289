//! Every optimizer's first two updates against its published rule,
//! computed independently here, and convergence on a convex quadratic.

use tapegrad::nn::{AdaGrad, Adam, AdamW, Optimizer, ParamStore, RmsProp, Schedule, Sgd};
use tapegrad::{Tape, Tensor};

const C: [f64; 3] = [1.0, 2.0, 5.0];
const A: [f64; 3] = [0.5, -1.0, 2.0];
const W0: [f64; 3] = [1.5, 0.3, -0.7];

/// f(w) = Σ c_i (w_i - a_i)², whose gradient is 2c(w - a).
fn gradient(w: &[f64]) -> Vec<f64> {
    w.iter()
        .zip(C)
        .zip(A)
        .map(|((w, c), a)| 2.0 * c * (w - a))
        .collect()
}

/// Runs `steps` optimizer steps on f from W0, with `schedule` attached to
/// the optimizer; returns the iterates.
fn run_scheduled(opt: &mut dyn Optimizer<f64>, steps: u64, schedule: &Schedule) -> Vec<Vec<f64>> {
    opt.set_schedule(schedule.clone());
    let mut params = ParamStore::new();
    let w = params.add("w", Tensor::from_vec(W0.to_vec(), [3]));
    let (c, a) = (
        Tensor::from_vec(C.to_vec(), [3]),
        Tensor::from_vec(A.to_vec(), [3]),
    );
    let tape = Tape::new();
    let mut out = vec![];
    for _ in 0..steps {
        tape.reset();
        let wv = params.var(&tape, w);
        let loss = ((wv - tape.constant(a.clone())).square() * tape.constant(c.clone())).sum();
        let grads = loss.backward();
        assert_eq!(
            params.grad(&grads, w).unwrap().to_vec(),
            gradient(params.value(w).data())
        );
        opt.step(&mut params, &grads);
        out.push(params.value(w).to_vec());
    }
    out
}

fn run(opt: &mut dyn Optimizer<f64>, steps: u64) -> Vec<Vec<f64>> {
    run_scheduled(opt, steps, &Schedule::Constant)
}

fn assert_same(got: &[Vec<f64>], want: &[Vec<f64>]) {
    for (step, (g, w)) in got.iter().zip(want).enumerate() {
        for (i, (p, q)) in g.iter().zip(w).enumerate() {
            assert!((p - q).abs() < 1e-12, "step {}, w{i}: {p} vs {q}", step + 1);
        }
    }
}

/// Two steps of a per-element rule `update(w, g, state, t) -> w`.
fn reference<S: Clone>(init: S, update: impl Fn(f64, f64, &mut S, i32) -> f64) -> Vec<Vec<f64>> {
    let mut w = W0.to_vec();
    let mut states = vec![init; 3];
    let mut out = vec![];
    for t in 1..=2 {
        let g = gradient(&w);
        for i in 0..3 {
            w[i] = update(w[i], g[i], &mut states[i], t);
        }
        out.push(w.clone());
    }
    out
}

#[test]
fn sgd_first_two_updates() {
    let (lr, wd) = (0.1, 0.01);
    assert_same(
        &run(&mut Sgd::new(lr).weight_decay(wd), 2),
        &reference((), |w, g, _, _| w - lr * (g + wd * w)),
    );
}

#[test]
fn sgd_momentum_first_two_updates() {
    let (lr, mu) = (0.1, 0.9);
    let want = reference(None::<f64>, |w, g, b, _| {
        let nb = match *b {
            None => g,
            Some(b) => mu * b + g,
        };
        *b = Some(nb);
        w - lr * nb
    });
    assert_same(&run(&mut Sgd::new(lr).momentum(mu), 2), &want);
}

#[test]
fn sgd_nesterov_first_two_updates() {
    let (lr, mu) = (0.1, 0.9);
    let want = reference(None::<f64>, |w, g, b, _| {
        let nb = b.map_or(g, |b| mu * b + g);
        *b = Some(nb);
        w - lr * (g + mu * nb)
    });
    assert_same(&run(&mut Sgd::new(lr).nesterov(mu), 2), &want);
}

#[test]
fn adagrad_first_two_updates() {
    let lr = 0.5;
    let want = reference(0.0, |w, g, s, _| {
        *s += g * g;
        w - lr * g / (s.sqrt() + 1e-10)
    });
    assert_same(&run(&mut AdaGrad::new(lr), 2), &want);
}

#[test]
fn rmsprop_first_two_updates() {
    let (lr, alpha, eps) = (0.01, 0.99, 1e-8);
    let want = reference(0.0, |w, g, s, _| {
        *s = alpha * *s + (1.0 - alpha) * g * g;
        w - lr * g / (s.sqrt() + eps)
    });
    assert_same(&run(&mut RmsProp::new(lr), 2), &want);
    let mu = 0.5;
    let want = reference((0.0, 0.0), |w, g, (s, b), _| {
        *s = alpha * *s + (1.0 - alpha) * g * g;
        *b = mu * *b + g / (s.sqrt() + eps);
        w - lr * *b
    });
    assert_same(&run(&mut RmsProp::new(lr).momentum(mu), 2), &want);
}

#[test]
fn adam_first_two_updates_with_bias_correction() {
    let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let want = reference((0.0, 0.0), |w, g, (m, v), t| {
        let g = g + wd * w; // Adam's weight decay is L2
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let (mh, vh) = (*m / (1.0 - b1.powi(t)), *v / (1.0 - b2.powi(t)));
        w - lr * mh / (vh.sqrt() + eps)
    });
    assert_same(&run(&mut Adam::new(lr).weight_decay(wd), 2), &want);
}

#[test]
fn adamw_first_two_updates_with_decoupled_decay() {
    let (lr, b1, b2, eps, wd) = (0.01, 0.9, 0.999, 1e-8, 0.1);
    let want = reference((0.0, 0.0), |w, g, (m, v), t| {
        let w = w * (1.0 - lr * wd); // decay the weight, not the gradient
        *m = b1 * *m + (1.0 - b1) * g;
        *v = b2 * *v + (1.0 - b2) * g * g;
        let (mh, vh) = (*m / (1.0 - b1.powi(t)), *v / (1.0 - b2.powi(t)));
        w - lr * mh / (vh.sqrt() + eps)
    });
    assert_same(&run(&mut AdamW::new(lr).weight_decay(wd), 2), &want);
}

/// The distance of the last iterate to the minimiser `A`.
fn final_error(opt: &mut dyn Optimizer<f64>, steps: u64, schedule: Schedule) -> f64 {
    let last = run_scheduled(opt, steps, &schedule).pop().unwrap();
    last.iter()
        .zip(A)
        .map(|(w, a)| (w - a).abs())
        .fold(0.0, f64::max)
}

#[test]
fn every_optimizer_drives_a_convex_quadratic_to_its_minimum() {
    let decay = || Schedule::Exponential { gamma: 0.995 };
    let cases: Vec<(&str, Box<dyn Optimizer<f64>>, Schedule)> = vec![
        ("sgd", Box::new(Sgd::new(0.05)), Schedule::Constant),
        (
            "momentum",
            Box::new(Sgd::new(0.02).momentum(0.9)),
            Schedule::Constant,
        ),
        (
            "nesterov",
            Box::new(Sgd::new(0.02).nesterov(0.9)),
            Schedule::Constant,
        ),
        ("adagrad", Box::new(AdaGrad::new(0.5)), Schedule::Constant),
        ("rmsprop", Box::new(RmsProp::new(0.05)), decay()),
        ("adam", Box::new(Adam::new(0.1)), decay()),
        (
            "adamw",
            Box::new(AdamW::new(0.1).weight_decay(0.0)),
            decay(),
        ),
    ];
    for (name, mut opt, schedule) in cases {
        let err = final_error(opt.as_mut(), 2000, schedule);
        assert!(err < 1e-6, "{name}: max |w - a| = {err:e} after 2000 steps");
    }
}

#[test]
fn schedules_follow_their_formulas() {
    assert_eq!(
        Schedule::Step {
            every: 10,
            gamma: 0.5
        }
        .lr(1.0, 25),
        0.25
    );
    assert!((Schedule::Exponential { gamma: 0.9 }.lr(2.0, 3) - 2.0 * 0.729).abs() < 1e-15);
    let cos = Schedule::Cosine {
        total: 100,
        min_lr: 0.1,
    };
    assert_eq!(cos.lr(1.0, 0), 1.0);
    assert!((cos.lr(1.0, 50) - 0.55).abs() < 1e-15);
    assert_eq!(cos.lr(1.0, 100), 0.1);
}
