//! A training loop over fixed shapes reaches a steady state with no heap
//! allocation per step of its own: `reset()` keeps the tape's capacity and
//! tensor buffers are recycled. Counted with a global allocator, on the
//! test's own thread only: a library linked in (OpenBLAS with the `blas`
//! feature) starts threads of its own when the program loads, and their
//! start-up allocations, landing at random moments, are not the step's.
//! (The products here are small, so tapegrad itself stays on this thread.)
//!
//! The allocations left are inside the GEMM crate (`gemm` allocates its
//! packing scratch on each call and offers no way to pass one in): they are
//! told apart by `tapegrad::tensor::inside_gemm()` and not counted; every
//! other allocation fails the test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use tapegrad::{Tape, Tensor, Var};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` and no destructor: reading it never allocates.
    static COUNTING_HERE: Cell<bool> = const { Cell::new(false) };
}

/// Counts allocations from this thread from now until `stop_counting`.
fn start_counting() {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING_HERE.with(|c| c.set(true));
}

fn stop_counting() -> usize {
    COUNTING_HERE.with(|c| c.set(false));
    ALLOCS.load(Ordering::SeqCst)
}

fn count_one() {
    if COUNTING_HERE.try_with(Cell::get).unwrap_or(false) && !tapegrad::tensor::inside_gemm() {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One SGD step of a 2-layer classifier (tanh and relu hidden layers,
/// log-softmax cross-entropy picked with gather) plus a scalar side-loss.
fn step(tape: &Tape<f32>, params: &mut [Tensor<f32>], x: &Tensor<f32>, labels: &[usize]) -> f32 {
    tape.reset();
    let p: Vec<Var<f32>> = Vec::new(); // zero-capacity: never allocates
    drop(p);
    let w1 = tape.var(params[0].clone());
    let b1 = tape.var(params[1].clone());
    let w2 = tape.var(params[2].clone());
    let b2 = tape.var(params[3].clone());
    let s = tape.var(params[4].clone());
    let input = tape.constant(x.clone());
    let h = (input.matmul(w1) + b1).tanh().relu();
    let logits = h.matmul(w2) + b2;
    let nll = -logits.log_softmax(1).gather(1, labels).mean();
    let loss = nll + (s * s - 1.0).square() * 0.1;
    let value = loss.item();
    let grads = loss.backward();
    for (param, var) in params.iter_mut().zip([w1, b1, w2, b2, s]) {
        for (w, g) in param.data_mut().iter_mut().zip(grads[var].data()) {
            *w -= 0.1 * g;
        }
    }
    value
}

#[test]
fn training_steps_allocate_nothing_after_warm_up() {
    let tape = Tape::<f32>::new();
    let mut params = vec![
        Tensor::rand_uniform([8, 16], -0.5, 0.5, 1),
        Tensor::zeros([16]),
        Tensor::rand_uniform([16, 4], -0.5, 0.5, 2),
        Tensor::zeros([4]),
        Tensor::scalar(3.0),
    ];
    let x = Tensor::rand_uniform([32, 8], -1.0, 1.0, 3);
    let labels: Vec<usize> = (0..32).map(|i| i % 4).collect();
    let first = step(&tape, &mut params, &x, &labels);
    for _ in 0..3 {
        step(&tape, &mut params, &x, &labels);
    }
    let gemm_before = tapegrad::tensor::gemm_calls();
    start_counting();
    let mut last = 0.0;
    for _ in 0..10 {
        last = step(&tape, &mut params, &x, &labels);
    }
    let n = stop_counting();
    let gemms = tapegrad::tensor::gemm_calls() - gemm_before;
    assert_eq!(gemms, 50, "2 forward and 3 backward products per step");
    assert_eq!(n, 0, "{n} heap allocations of tapegrad's own in 10 steps");
    assert!(last < first, "the loop should learn: {first} -> {last}");

    // A scalar graph (the chapter's neuron, repeated) allocates nothing at
    // all once the tape has grown: scalars live in the tape's dense arrays,
    // leaves of a range (`vars`) too, and gradients read back as a slice.
    let scalar_tape = Tape::<f64>::new();
    let scalar_step = |w0: f64| {
        scalar_tape.reset();
        let x = scalar_tape.constant(0.5);
        let p = scalar_tape.vars([w0, -0.1]);
        let (w, b) = (p.get(0), p.get(1));
        let mut y = x;
        for _ in 0..100 {
            y = (w * y + b).tanh() * 2.0 - 0.5;
        }
        let g = y.backward();
        g.items(&p)[0]
    };
    scalar_step(0.7);
    start_counting();
    let dw = scalar_step(0.8);
    assert_eq!(stop_counting(), 0, "scalar graph allocated");
    assert!(dw.is_finite());

    // The same graph recorded once and replayed with new values: the
    // replay's partials and the gradient slots are reused.
    let replay_tape = Tape::<f64>::new();
    let (x0, w, b) = (
        replay_tape.constant(0.5),
        replay_tape.var(0.7),
        replay_tape.var(-0.1),
    );
    let mut y = x0;
    for _ in 0..100 {
        y = (w * y + b).tanh() * 2.0 - 0.5;
    }
    let replayed = |w0: f64| {
        replay_tape.set_value(w, w0);
        replay_tape.replay().unwrap();
        y.backward()[w].item()
    };
    replayed(0.75);
    start_counting();
    let dw_replayed = replayed(0.8);
    assert_eq!(stop_counting(), 0, "replay allocated");
    assert_eq!(
        dw_replayed.to_bits(),
        dw.to_bits(),
        "replay equals the fresh recording"
    );

    // The nn stack: an MLP with dropout from a ParamStore, cross-entropy,
    // a validation forward on a second tape between backward and step,
    // clipping, and Adam (its checks, then the update in place from its
    // per-parameter state).
    use tapegrad::nn::{
        clip_grad_norm, cross_entropy, Activation, Adam, Mlp, Module, Optimizer, ParamStore,
    };
    let mut store = ParamStore::<f32>::new();
    let mlp = Mlp::with_dropout(&mut store, "mlp", &[8, 32, 32, 4], Activation::Relu, 0.1, 5);
    let mut adam = Adam::new(1e-3);
    let (nn_tape, eval_tape) = (Tape::<f32>::new(), Tape::<f32>::new());
    let mut nn_step = |store: &mut ParamStore<f32>| {
        nn_tape.reset();
        let loss = cross_entropy(mlp.forward(store, nn_tape.constant(x.clone())), &labels);
        let mut grads = loss.backward();
        eval_tape.reset();
        let _ = eval_tape.no_grad(|| mlp.forward(store, eval_tape.constant(x.clone())));
        clip_grad_norm(store, &mut grads, 10.0);
        adam.step(store, &grads);
    };
    for _ in 0..3 {
        nn_step(&mut store);
    }
    start_counting();
    for _ in 0..10 {
        nn_step(&mut store);
    }
    let n = stop_counting();
    assert_eq!(n, 0, "{n} allocations of tapegrad's own in 10 nn steps");

    // A CNN step: convolutions (im2col columns from the pool), batch norm
    // with its running statistics, max pooling, flatten, Adam.
    use tapegrad::nn::{BatchNorm2d, Conv2d, Flatten, Linear, MaxPool2d, Sequential};
    use tapegrad::ops::Pool2d;
    use tapegrad::tensor::Conv2dGeom;
    let same = Conv2dGeom {
        padding: [1, 1],
        ..Default::default()
    };
    let mut store = ParamStore::<f32>::new();
    let cnn = Sequential::new()
        .add(Conv2d::new(&mut store, "c1", 1, 4, [3, 3], same, 1))
        .add(BatchNorm2d::new(&mut store, "bn", 4))
        .add(Activation::Relu)
        .add(MaxPool2d(Pool2d::square(2)))
        .add(Conv2d::new(&mut store, "c2", 4, 8, [3, 3], same, 2))
        .add(Activation::Relu)
        .add(Flatten(1))
        .add(Linear::new(&mut store, "fc", 8 * 6 * 6, 4, 3));
    let images = Tensor::rand_uniform([8, 1, 12, 12], 0.0, 1.0, 4);
    let mut adam = Adam::new(1e-3);
    let cnn_tape = Tape::<f32>::new();
    let mut cnn_step = |store: &mut ParamStore<f32>| {
        cnn_tape.reset();
        let logits = cnn.forward(store, cnn_tape.constant(images.clone()));
        let loss = cross_entropy(logits, &labels[..8]);
        adam.step(store, &loss.backward());
        loss.item()
    };
    let first = cnn_step(&mut store);
    for _ in 0..3 {
        cnn_step(&mut store);
    }
    start_counting();
    let mut last = first;
    for _ in 0..10 {
        last = cnn_step(&mut store);
    }
    let n = stop_counting();
    assert_eq!(n, 0, "{n} allocations of tapegrad's own in 10 CNN steps");
    assert!(last < first, "the CNN should learn: {first} -> {last}");
}
