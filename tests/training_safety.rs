//! A training step never silently does nothing: parameters find their
//! gradients through the tape they were recorded on, whatever other
//! forwards ran in between; steps that cannot work fail loudly; the
//! training-loop features (groups, accumulation, schedules, modes) do what
//! PyTorch users expect.

mod common;

use common::panic_message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use tapegrad::nn::{
    clip_grad_norm, cross_entropy, try_clip_grad_norm, Activation, Adam, Dropout, GradAccumulator,
    Linear, Mlp, Module, Optimizer, ParamGroup, ParamId, ParamStore, Schedule, Sgd, StepError,
};
use tapegrad::{Tape, Tensor, Var};

fn data() -> (Tensor<f64>, Vec<usize>) {
    let x = Tensor::rand_uniform([8, 4], -1.0, 1.0, 5);
    (x, vec![0, 1, 2, 0, 1, 2, 1, 0])
}

fn model(params: &mut ParamStore<f64>) -> Mlp<f64> {
    Mlp::new(params, "mlp", &[4, 6, 3], Activation::Tanh, 9)
}

/// Every parameter's bits, in store order.
fn bits(params: &ParamStore<f64>) -> Vec<u64> {
    params
        .iter()
        .flat_map(|(_, _, t)| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

/// Three Adam steps with clipping; `extra` runs between backward and
/// clip/step (or before the forward, when `before` is set).
fn train(extra: impl Fn(&ParamStore<f64>, &Mlp<f64>, &Tape<f64>), before: bool) -> Vec<u64> {
    let mut params = ParamStore::new();
    let m = model(&mut params);
    let (x, y) = data();
    let mut opt = Adam::new(1e-2);
    let tape = Tape::new();
    for _ in 0..3 {
        tape.reset();
        if before {
            extra(&params, &m, &tape);
        }
        let loss = cross_entropy(m.forward(&params, tape.constant(x.clone())), &y);
        let mut g = loss.backward();
        if !before {
            extra(&params, &m, &tape);
        }
        let norm = clip_grad_norm(&params, &mut g, 0.5);
        assert!(norm > 0.0, "norm {norm}");
        opt.step(&mut params, &g);
    }
    assert_eq!(opt.steps(), 3);
    bits(&params)
}

#[test]
fn validation_on_a_second_tape_between_backward_and_step_changes_nothing() {
    let plain = train(|_, _, _| {}, false);
    let (x, y) = data();
    let with_validation = train(
        |params, m, _| {
            let eval = Tape::new();
            let v = eval
                .no_grad(|| cross_entropy(m.forward(params, eval.constant(x.clone())), &y).item());
            assert!(v.is_finite());
        },
        false,
    );
    assert_eq!(plain, with_validation);
}

#[test]
fn a_no_grad_peek_on_the_same_tape_before_the_forward_changes_nothing() {
    let plain = train(|_, _, _| {}, false);
    let (x, _) = data();
    let peeked = train(
        |params, m, tape| {
            let n = tape.no_grad(|| m.forward(params, tape.constant(x.clone())).shape().len());
            assert_eq!(n, 2);
        },
        true,
    );
    assert_eq!(plain, peeked);
}

#[test]
fn a_no_grad_peek_after_the_forward_on_the_same_tape_changes_nothing() {
    let plain = train(|_, _, _| {}, false);
    let (x, _) = data();
    let peeked = train(
        |params, m, tape| {
            tape.no_grad(|| m.forward(params, tape.constant(x.clone())).item_count());
        },
        false,
    );
    assert_eq!(plain, peeked);
}

trait ItemCount {
    fn item_count(&self) -> usize;
}
impl ItemCount for Var<'_, f64> {
    fn item_count(&self) -> usize {
        self.value().numel()
    }
}

#[test]
fn one_model_on_two_tapes_in_one_step_finds_each_tapes_gradient() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::from_vec(vec![1.0, 2.0], [2]));
    let (a, b) = (Tape::new(), Tape::new());
    let ga = (params.var(&a, w) * 3.0).sum().backward();
    let gb = (params.var(&b, w).square()).sum().backward();
    assert_eq!(params.grad(&ga, w).unwrap().data(), &[3.0, 3.0]);
    assert_eq!(params.grad(&gb, w).unwrap().data(), &[2.0, 4.0]);
    let mut opt = Sgd::new(0.5);
    opt.step(&mut params, &ga);
    assert_eq!(params.value(w).data(), &[-0.5, 0.5]);
    opt.step(&mut params, &gb); // the gradient at the old w, as recorded
    assert_eq!(params.value(w).data(), &[-1.5, -1.5]);
}

#[test]
fn two_models_sharing_a_store_each_get_their_gradient() {
    let mut params = ParamStore::<f64>::new();
    let enc = Linear::new(&mut params, "enc", 3, 2, 1);
    let dec = Linear::new(&mut params, "dec", 2, 3, 2);
    let tape = Tape::new();
    let x = tape.constant(Tensor::rand_uniform([4, 3], -1.0, 1.0, 3));
    let loss = (dec.forward(&params, enc.forward(&params, x).tanh()) - x)
        .square()
        .mean();
    let g = loss.backward();
    for id in [enc.weight, dec.weight, enc.bias.unwrap(), dec.bias.unwrap()] {
        let gr = params.grad(&g, id).expect("every parameter has a gradient");
        assert!(gr.data().iter().any(|v| *v != 0.0), "{}", params.name(id));
    }
}

#[test]
fn a_frozen_parameter_is_not_updated_and_the_rest_are() {
    let mut params = ParamStore::<f64>::new();
    let l = Linear::new(&mut params, "l", 3, 2, 1);
    params.freeze(l.weight);
    let (w0, b0) = (
        params.value(l.weight).clone(),
        params.value(l.bias.unwrap()).clone(),
    );
    let tape = Tape::new();
    let loss = l
        .forward(&params, tape.constant(Tensor::ones([2, 3])))
        .sum();
    Sgd::new(0.1).step(&mut params, &loss.backward());
    assert_eq!(params.value(l.weight), &w0);
    assert_ne!(params.value(l.bias.unwrap()), &b0);
}

#[test]
fn gradients_from_before_a_reset_are_refused_with_a_message() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(1.0));
    let tape = Tape::new();
    let g = (params.var(&tape, w) * 2.0).backward();
    tape.reset();
    let _ = params.var(&tape, w) * 5.0;
    let mut opt = Sgd::new(0.1);
    let msg = panic_message(|| opt.step(&mut params, &g));
    assert!(msg.contains("before it was reset"), "{msg}");
    assert_eq!(params.value(w).item(), 1.0);
    assert_eq!(opt.steps(), 0);
}

#[test]
fn a_step_with_another_store_is_refused_and_says_why() {
    let mut params = ParamStore::<f64>::new();
    let m = model(&mut params);
    let mut other = ParamStore::<f64>::new();
    let _ = model(&mut other);
    let (x, y) = data();
    let tape = Tape::new();
    let g = cross_entropy(m.forward(&params, tape.constant(x)), &y).backward();
    let before = bits(&other);
    let mut opt = Adam::new(1e-2);
    let err = opt.try_step(&mut other, &g).unwrap_err();
    assert!(matches!(err, StepError::NoGradients { .. }));
    assert!(err.to_string().contains("another ParamStore"), "{err}");
    assert_eq!(bits(&other), before);
    assert_eq!(opt.steps(), 0);
    let msg = panic_message(|| opt.step(&mut other, &g));
    assert!(msg.contains("Adam::step"), "{msg}");
}

#[test]
fn a_step_when_everything_is_frozen_is_refused() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(1.0));
    let u = params.add("u", Tensor::scalar(2.0));
    params.freeze(w);
    let tape = Tape::new();
    let g = (params.var(&tape, w) * params.var(&tape, u)).backward();
    params.freeze(u);
    let err = Sgd::new(0.1).try_step(&mut params, &g).unwrap_err();
    assert!(err.to_string().contains("no trainable parameter"), "{err}");
}

#[test]
fn a_parameter_peeked_at_in_no_grad_still_trains_in_the_same_step() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(3.0));
    let tape = Tape::new();
    let peek = tape.no_grad(|| params.var(&tape, w));
    assert!(!peek.requires_grad());
    let v = params.var(&tape, w);
    assert!(v.requires_grad());
    let g = (v * v).backward();
    assert_eq!(params.grad(&g, w).unwrap().item(), 6.0);
}

#[test]
fn backward_of_an_output_that_needs_no_gradient_panics_naming_it() {
    let mut params = ParamStore::<f64>::new();
    let m = model(&mut params);
    let (x, y) = data();
    let tape = Tape::new();
    let loss = tape.no_grad(|| cross_entropy(m.forward(&params, tape.constant(x)), &y));
    let loss = loss.named("loss");
    let msg = panic_message(|| {
        loss.backward();
    });
    assert!(
        msg.contains("loss") && msg.contains("does not require a gradient"),
        "{msg}"
    );
    let c = tape.constant(2.0) * 3.0;
    let msg = panic_message(|| {
        c.backward_with(Tensor::scalar(1.0));
    });
    assert!(msg.contains("backward_with"), "{msg}");
}

#[test]
fn a_nan_in_the_batch_is_refused_by_the_step_and_the_clip() {
    let mut params = ParamStore::<f64>::new();
    let m = model(&mut params);
    let (mut x, y) = data();
    x.data_mut()[5] = f64::NAN;
    let tape = Tape::new();
    let loss = cross_entropy(m.forward(&params, tape.constant(x)), &y);
    let mut g = loss.backward();
    let before = bits(&params);
    let err = try_clip_grad_norm(&params, &mut g, 1.0).unwrap_err();
    assert!(matches!(err, StepError::NonFinite { .. }), "{err}");
    let mut opt = Adam::new(1e-2);
    let msg = panic_message(|| opt.step(&mut params, &g));
    assert!(msg.contains("NaN") && msg.contains("mlp."), "{msg}");
    assert_eq!(bits(&params), before, "nothing may change");
    assert_eq!(opt.steps(), 0);
    // PyTorch's behaviour on request.
    opt.settings_mut().allow_non_finite(true);
    opt.step(&mut params, &g);
    assert!(params
        .iter()
        .any(|(_, _, t)| t.data().iter().any(|v| v.is_nan())));
}

/// The loss of samples `rows` of the data, summed (so micro-batch sums
/// add up to the full batch's).
fn summed_loss<'t>(
    params: &ParamStore<f64>,
    m: &Mlp<f64>,
    tape: &'t Tape<f64>,
    rows: std::ops::Range<usize>,
) -> Var<'t, f64> {
    let (x, y) = data();
    let xs = Tensor::from_vec(
        x.data()[4 * rows.start..4 * rows.end].to_vec(),
        [rows.len(), 4],
    );
    tapegrad::nn::cross_entropy_with(
        m.forward(params, tape.constant(xs)),
        &y[rows],
        tapegrad::nn::Reduction::Sum,
    )
}

#[test]
fn four_micro_batches_equal_the_full_batch() {
    let mut full = ParamStore::<f64>::new();
    let m = model(&mut full);
    let mut micro = ParamStore::<f64>::new();
    let _ = model(&mut micro);
    let (mut opt_full, mut opt_micro) = (Adam::new(1e-2), Adam::new(1e-2));
    let tape = Tape::new();
    let mut acc = GradAccumulator::new();
    for _ in 0..3 {
        tape.reset();
        let g = (summed_loss(&full, &m, &tape, 0..8) * 0.125).backward();
        opt_full.step(&mut full, &g);
        drop(g);
        for k in 0..4 {
            tape.reset();
            let g = summed_loss(&micro, &m, &tape, 2 * k..2 * k + 2).backward();
            acc.add(&micro, &g, 0.125);
        }
        assert_eq!(acc.len(), 4);
        opt_micro.step(&mut micro, &acc);
        assert!(acc.is_empty(), "a step spends the sum");
    }
    for ((_, name, a), (_, _, b)) in full.iter().zip(micro.iter()) {
        let d = a.max_abs_diff(b);
        assert!(d < 1e-12, "{name}: {d}");
    }
    // A spent sum is not applied twice.
    let err = opt_micro.try_step(&mut micro, &acc).unwrap_err();
    assert!(err.to_string().contains("used by a step already"), "{err}");
}

#[test]
fn parameter_groups_have_their_own_learning_rate_and_weight_decay() {
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", Tensor::scalar(1.0));
    let b = params.add("b", Tensor::scalar(1.0));
    let c = params.add("c", Tensor::scalar(1.0));
    let mut opt = Sgd::new(0.1)
        .weight_decay(0.5)
        .with_group(ParamGroup::new([b]).lr(0.01))
        .with_group(ParamGroup::new([c]).weight_decay(0.0));
    let tape = Tape::new();
    let loss = params.var(&tape, a) + params.var(&tape, b) + params.var(&tape, c);
    opt.step(&mut params, &loss.backward());
    assert_eq!(params.value(a).item(), 1.0 - 0.1 * (1.0 + 0.5));
    assert_eq!(params.value(b).item(), 1.0 - 0.01 * (1.0 + 0.5));
    assert_eq!(params.value(c).item(), 1.0 - 0.1 * 1.0);
    let msg = panic_message(|| opt.add_group(ParamGroup::new([b])));
    assert!(msg.contains("in group 0 already"), "{msg}");
}

#[test]
fn an_attached_schedule_steps_itself_and_scales_every_group() {
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", Tensor::scalar(0.0));
    let b = params.add("b", Tensor::scalar(0.0));
    let schedule = Schedule::Warmup {
        steps: 2,
        then: Box::new(Schedule::Cosine {
            total: 4,
            min_lr: 0.0,
        }),
    };
    let mut opt = Sgd::new(1.0)
        .with_group(ParamGroup::new([b]).lr(0.5))
        .with_schedule(schedule.clone());
    let tape = Tape::new();
    let (mut wa, mut wb) = (0.0, 0.0);
    for step in 0..6u64 {
        assert_eq!(opt.lr(), schedule.lr(1.0, step));
        tape.reset();
        let loss = params.var(&tape, a) + params.var(&tape, b);
        opt.step(&mut params, &loss.backward());
        wa -= schedule.lr(1.0, step);
        wb -= schedule.lr(0.5, step);
        assert_eq!(params.value(a).item(), wa);
        assert_eq!(params.value(b).item(), wb);
    }
}

/// A container written by a user, which knows nothing about modes.
struct Careless {
    inner: Vec<Box<dyn Module<f64>>>,
}
impl Module<f64> for Careless {
    fn forward<'t>(&self, params: &ParamStore<f64>, x: Var<'t, f64>) -> Var<'t, f64> {
        self.inner.iter().fold(x, |h, m| m.forward(params, h))
    }
    fn parameters(&self) -> Vec<ParamId> {
        self.inner.iter().flat_map(|m| m.parameters()).collect()
    }
}

#[test]
fn eval_mode_reaches_dropout_inside_a_custom_container() {
    let mut params = ParamStore::<f64>::new();
    let c = Careless {
        inner: vec![
            Box::new(Dropout::new(&mut params, "drop", 0.5, 1)),
            Box::new(Activation::Relu),
        ],
    };
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([200]));
    assert!(c.forward(&params, x).value().data().contains(&0.0));
    params.eval();
    assert_eq!(c.forward(&params, x).value(), Tensor::ones([200]));
    params.train();
    assert!(c.forward(&params, x).value().data().contains(&0.0));
}

#[test]
fn a_layer_fed_the_wrong_shape_names_itself_the_sizes_and_the_callers_line() {
    let mut params = ParamStore::<f64>::new();
    let l = Linear::new(&mut params, "enc", 4, 8, 1);
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([5, 7]));
    let line = line!() + 1;
    let msg = panic_message(|| {
        let _ = l.forward(&params, x);
    });
    assert!(
        msg.contains("Linear `enc` (4 → 8 features)")
            && msg.contains("[batch, 4]")
            && msg.contains("[5, 7]"),
        "{msg}"
    );
    let m = Mlp::new(&mut params, "mlp", &[3, 2], Activation::Relu, 1);
    let msg = panic_message(|| {
        let _ = m.forward(&params, x);
    });
    assert!(msg.contains("Linear `mlp.0`"), "{msg}");
    // The panic is reported at this file's line, not inside the library,
    // for a layer called directly and inside a container. (The hook is the
    // process's: keep only this test's panics, tests run in parallel.)
    let locations = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = locations.clone();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        if text.starts_with("Linear `enc`") || text.starts_with("Linear `mlp.0`") {
            let at = info.location().map(|l| l.to_string()).unwrap_or_default();
            seen.lock().unwrap().push(at);
        }
    }));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = l.forward(&params, x);
    }));
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let _ = m.forward(&params, x);
    }));
    std::panic::set_hook(hook);
    let at = locations.lock().unwrap().clone();
    assert_eq!(at.len(), 2, "{at:?}");
    for a in &at {
        assert!(
            a.starts_with("tests/training_safety.rs:"),
            "{a} (line {line})"
        );
    }
}

#[test]
fn cross_entropy_on_an_empty_batch_says_so() {
    let tape = Tape::<f64>::new();
    let logits = tape.var(Tensor::zeros([0, 3]));
    let msg = panic_message(|| {
        let _ = cross_entropy(logits, &[]);
    });
    assert!(msg.contains("cross_entropy: empty batch"), "{msg}");
}

#[test]
fn accuracy_and_argmax_read_logits() {
    let logits = Tensor::from_vec(vec![0.1, 0.9, 0.0, 0.3, 0.2, 0.5, 2.0, -1.0, 0.0], [3, 3]);
    assert_eq!(logits.argmax(1), vec![1, 2, 0]);
    assert_eq!(tapegrad::nn::accuracy(&logits, &[1, 2, 1]), 2.0 / 3.0);
}

#[test]
fn an_mlp_with_dropout_is_named_like_pytorch_and_drops_only_in_training() {
    let mut params = ParamStore::<f64>::new();
    let m = Mlp::with_dropout(&mut params, "mlp", &[4, 64, 3], Activation::Relu, 0.5, 3);
    assert!(params.id("mlp.0.weight").is_some() && params.id("mlp.3.weight").is_some());
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([2, 4]));
    let (a, b) = (m.forward(&params, x).value(), m.forward(&params, x).value());
    assert_ne!(a, b, "two training forwards draw different masks");
    params.eval();
    let (a, b) = (m.forward(&params, x).value(), m.forward(&params, x).value());
    assert_eq!(a, b);
}

/// A module of two inputs: a plain struct with its own forward, and
/// `Module` for its parameters.
struct Bilinear {
    w: ParamId,
}
impl Bilinear {
    fn forward<'t>(
        &self,
        params: &ParamStore<f64>,
        a: Var<'t, f64>,
        b: Var<'t, f64>,
    ) -> Var<'t, f64> {
        (a.matmul(params.var(a.tape(), self.w)) * b).sum_axis(1, false)
    }
}

#[test]
fn a_module_with_two_inputs_trains() {
    let mut params = ParamStore::<f64>::new();
    let m = Bilinear {
        w: params.add("w", Tensor::rand_uniform([3, 2], -1.0, 1.0, 1)),
    };
    let tape = Tape::new();
    let mut opt = Sgd::new(0.1);
    let (a, b) = (
        Tensor::rand_uniform([4, 3], -1.0, 1.0, 2),
        Tensor::rand_uniform([4, 2], -1.0, 1.0, 3),
    );
    let mut losses = vec![];
    for _ in 0..20 {
        tape.reset();
        let y = m.forward(&params, tape.constant(a.clone()), tape.constant(b.clone()));
        let loss = (y - 1.0).square().mean();
        losses.push(loss.item());
        opt.step(&mut params, &loss.backward());
    }
    assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
}

/// Adam steps on the data; `reset` says whether the loop resets its tape.
fn train_steps(reset: bool, steps: usize) -> Vec<u64> {
    let mut params = ParamStore::new();
    let m = model(&mut params);
    let (x, y) = data();
    let mut opt = Adam::new(1e-2);
    let tape = Tape::new();
    for _ in 0..steps {
        if reset {
            tape.reset();
        }
        let loss = cross_entropy(m.forward(&params, tape.constant(x.clone())), &y);
        opt.step(&mut params, &loss.backward());
    }
    bits(&params)
}

#[test]
fn a_loop_that_forgets_to_reset_its_tape_still_uses_the_current_weights() {
    assert_eq!(train_steps(true, 4), train_steps(false, 4));
}

#[test]
fn a_validation_tape_reused_across_epochs_without_reset_sees_the_new_weights() {
    let mut params = ParamStore::<f64>::new();
    let m = model(&mut params);
    let (x, y) = data();
    let (train, eval) = (Tape::new(), Tape::new());
    let mut opt = Sgd::new(0.5);
    for _ in 0..3 {
        train.reset();
        let loss = cross_entropy(m.forward(&params, train.constant(x.clone())), &y);
        let before = loss.item();
        opt.step(&mut params, &loss.backward());
        let after =
            eval.no_grad(|| cross_entropy(m.forward(&params, eval.constant(x.clone())), &y).item());
        let fresh = Tape::new();
        let want = fresh
            .no_grad(|| cross_entropy(m.forward(&params, fresh.constant(x.clone())), &y).item());
        assert_eq!(after, want);
        assert!(after < before);
    }
}

#[test]
fn two_optimizers_over_one_store_each_train_their_own_parameters() {
    let mut params = ParamStore::<f64>::new();
    let g = params.add("gen", Tensor::scalar(1.0));
    let d = params.add("disc", Tensor::scalar(1.0));
    let mut opt_g = Sgd::new(0.1).with_params([g]);
    let mut opt_d = Sgd::new(0.01).with_params([d]);
    let tape = Tape::new();
    let loss = params.var(&tape, g) * params.var(&tape, d); // both gradients 1
    let grads = loss.backward();
    opt_g.step(&mut params, &grads);
    assert_eq!((params.value(g).item(), params.value(d).item()), (0.9, 1.0));
    opt_d.step(&mut params, &grads);
    assert_eq!(
        (params.value(g).item(), params.value(d).item()),
        (0.9, 0.99)
    );
    // An optimizer whose parameters got no gradient says so.
    let tape = Tape::new();
    let only_g = (params.var(&tape, g) * 2.0).backward();
    let err = opt_d.try_step(&mut params, &only_g).unwrap_err();
    assert!(matches!(err, StepError::NoGradients { .. }), "{err}");
}

#[test]
fn bad_hyperparameters_are_refused_where_they_are_written() {
    let msg = panic_message(|| drop(Adam::<f32>::new(f64::NAN)));
    assert!(msg.contains("learning rate NaN"), "{msg}");
    let msg = panic_message(|| drop(Sgd::<f32>::new(-0.1)));
    assert!(msg.contains("learning rate -0.1"), "{msg}");
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(1.0));
    let tape = Tape::new();
    let mut g = (params.var(&tape, w) * 3.0).backward();
    let msg = panic_message(|| {
        clip_grad_norm(&params, &mut g, 0.0);
    });
    assert!(msg.contains("max_norm 0"), "{msg}");
}

#[test]
fn a_linear_layer_fed_one_sample_without_a_batch_axis_says_how_to_fix_it() {
    let mut params = ParamStore::<f64>::new();
    let l = Linear::new(&mut params, "fc", 4, 2, 1);
    let tape = Tape::new();
    let x = tape.constant(Tensor::ones([4]));
    let msg = panic_message(|| {
        let _ = l.forward(&params, x);
    });
    assert!(msg.contains("reshape to [1, 4]"), "{msg}");
}

#[test]
fn a_step_after_a_forgotten_train_call_is_refused_when_the_mode_matters() {
    let mut params = ParamStore::<f64>::new();
    let m = Mlp::with_dropout(&mut params, "mlp", &[4, 8, 3], Activation::Relu, 0.5, 1);
    let (x, y) = data();
    let tape = Tape::new();
    params.eval(); // validation ...
    let _ = tape.no_grad(|| m.forward(&params, tape.constant(x.clone())).item_count());
    // ... and params.train() forgotten.
    tape.reset();
    let loss = cross_entropy(m.forward(&params, tape.constant(x.clone())), &y);
    let g = loss.backward();
    let mut opt = Adam::new(1e-2);
    let err = opt.try_step(&mut params, &g).unwrap_err();
    assert!(matches!(err, StepError::EvalMode { .. }), "{err}");
    assert!(err.to_string().contains("params.train()"), "{err}");
    opt.settings_mut().allow_eval_mode(true);
    opt.step(&mut params, &g);
    // A model with nothing mode-dependent trains in either mode.
    let mut plain = ParamStore::<f64>::new();
    let m = model(&mut plain);
    plain.eval();
    let loss = cross_entropy(m.forward(&plain, tape.constant(x.clone())), &y);
    Adam::new(1e-2).step(&mut plain, &loss.backward());
}

#[test]
fn clipping_after_the_step_is_refused() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::scalar(1.0));
    let tape = Tape::new();
    let mut g = (params.var(&tape, w) * 3.0).backward();
    Sgd::new(0.1).step(&mut params, &g);
    assert!(g.applied());
    let msg = panic_message(|| {
        clip_grad_norm(&params, &mut g, 1.0);
    });
    assert!(msg.contains("clip between backward() and step()"), "{msg}");
}

#[test]
fn an_accumulation_refuses_a_gradient_whose_shape_changed() {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::ones([2]));
    let mut acc = GradAccumulator::new();
    let tape = Tape::new();
    acc.add(&params, &params.var(&tape, w).sum().backward(), 1.0);
    *params.value_mut(w) = Tensor::ones([3]);
    tape.reset();
    let g = params.var(&tape, w).sum().backward();
    let msg = panic_message(|| acc.add(&params, &g, 1.0));
    assert!(msg.contains("changed shape from [2] to [3]"), "{msg}");
}
