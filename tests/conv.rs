//! Convolutions: first and second derivatives against central differences
//! over random shapes, geometries and values (proptest); the batched
//! Jacobian; PyTorch's shape rules and errors naming the op and shapes.

mod common;

use common::{check, panic_message};
use proptest::prelude::*;
use tapegrad::grad::jacobian;
use tapegrad::tensor::Conv2dGeom;
use tapegrad::{Tape, Tensor, Var};

/// A geometry and shapes that fit: (x shape, w shape, geometry).
fn case() -> impl Strategy<Value = ([usize; 4], [usize; 4], Conv2dGeom)> {
    (
        (1usize..=2, 1usize..=2, 1usize..=2, 1usize..=2),
        (3usize..=6, 3usize..=6, 1usize..=3, 1usize..=2),
        (
            1usize..=2,
            1usize..=2,
            0usize..=1,
            0usize..=1,
            1usize..=2,
            1usize..=2,
        ),
    )
        .prop_filter_map(
            "the kernel must fit",
            |((n, g, cg, og), (h, w, kh, kw), (s0, s1, p0, p1, d0, d1))| {
                let geom = Conv2dGeom {
                    stride: [s0, s1],
                    padding: [p0, p1],
                    dilation: [d0, d1],
                    groups: g,
                };
                geom.out_len(0, h, kh)?;
                geom.out_len(1, w, kw)?;
                Some(([n, g * cg, h, w], [g * og, cg, kh, kw], geom))
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn conv2d_first_and_second_derivatives((xs, ws, geom) in case(), seed in 0u64..1000) {
        let x = Tensor::rand_uniform(xs, -1.0, 1.0, seed);
        let w = Tensor::rand_uniform(ws, -1.0, 1.0, seed + 1);
        // Through tanh, so that second derivatives are more than the
        // bilinear cross terms.
        check("conv2d", &|v: &[Var<f64>]| v[0].conv2d(v[1], geom).tanh(), &[x, w], seed);
    }

    #[test]
    fn conv_transpose2d_first_and_second_derivatives((xs, ws, geom) in case(), seed in 0u64..1000, op in 0usize..=1) {
        // The transposed convolution of an output-shaped input.
        let tape = Tape::<f64>::new();
        let y = tape.constant(Tensor::zeros(xs)).conv2d(tape.constant(Tensor::zeros(ws)), geom);
        let us = y.shape();
        let output_padding = [op.min(geom.stride[0].max(geom.dilation[0]) - 1), 0];
        let u = Tensor::rand_uniform(us.as_slice(), -1.0, 1.0, seed);
        let w = Tensor::rand_uniform(ws, -1.0, 1.0, seed + 1);
        check(
            "conv_transpose2d",
            &|v: &[Var<f64>]| v[0].conv_transpose2d(v[1], geom, output_padding).sin(),
            &[u, w],
            seed,
        );
    }
}

#[test]
fn the_jacobian_of_a_convolution_in_one_batched_pass_matches_its_rows() {
    let geom = Conv2dGeom {
        stride: [2, 1],
        padding: [1, 0],
        groups: 2,
        ..Default::default()
    };
    let w = Tensor::<f64>::rand_uniform([4, 1, 2, 2], -1.0, 1.0, 1);
    let x = Tensor::<f64>::rand_uniform([1, 2, 4, 3], -1.0, 1.0, 2);
    fn f<'t>(v: Var<'t, f64>, w: &Tensor<f64>, geom: Conv2dGeom) -> Var<'t, f64> {
        v.conv2d(v.tape().constant(w.clone()), geom).tanh()
    }
    let jac = jacobian(|v| f(v, &w, geom), &x);
    let tape = Tape::new();
    let xv = tape.var(x.clone());
    let y = f(xv, &w, geom);
    let out = y.shape().iter().product::<usize>();
    assert_eq!(jac.numel(), out * x.numel());
    for r in 0..out {
        let row = y.backward_with(Tensor::one_hot(y.shape().as_slice(), r))[xv].clone();
        let got = &jac.data()[r * x.numel()..(r + 1) * x.numel()];
        for (a, b) in got.iter().zip(row.data()) {
            assert!((a - b).abs() < 1e-12, "row {r}: {a} vs {b}");
        }
    }
}

#[test]
fn shapes_follow_pytorch() {
    let tape = Tape::<f32>::new();
    let x = tape.constant(Tensor::zeros([2, 3, 28, 28]));
    let w = tape.constant(Tensor::zeros([8, 3, 5, 5]));
    let geom = |s, p, d| Conv2dGeom {
        stride: [s, s],
        padding: [p, p],
        dilation: [d, d],
        groups: 1,
    };
    assert_eq!(
        x.conv2d(w, geom(1, 0, 1)).shape().as_slice(),
        &[2, 8, 24, 24]
    );
    assert_eq!(
        x.conv2d(w, geom(2, 2, 1)).shape().as_slice(),
        &[2, 8, 14, 14]
    );
    assert_eq!(
        x.conv2d(w, geom(1, 0, 2)).shape().as_slice(),
        &[2, 8, 20, 20]
    );
    // Depthwise: groups = channels, weight (C, 1, k, k).
    let dw = tape.constant(Tensor::zeros([3, 1, 3, 3]));
    let g = Conv2dGeom {
        groups: 3,
        padding: [1, 1],
        ..Default::default()
    };
    assert_eq!(x.conv2d(dw, g).shape().as_slice(), &[2, 3, 28, 28]);
    // Transposed: (h-1)·s - 2p + d(k-1) + output_padding + 1, weight (in, out/g, k, k).
    let t = tape.constant(Tensor::zeros([2, 8, 7, 7]));
    let tw = tape.constant(Tensor::zeros([8, 4, 3, 3]));
    let up = geom(2, 1, 1);
    assert_eq!(
        t.conv_transpose2d(tw, up, [1, 1]).shape().as_slice(),
        &[2, 4, 14, 14]
    );
    assert_eq!(
        t.conv_transpose2d(tw, up, [0, 0]).shape().as_slice(),
        &[2, 4, 13, 13]
    );
}

#[test]
fn a_mismatched_weight_is_an_error_naming_the_op_and_shapes() {
    let tape = Tape::<f32>::new();
    let x = tape.constant(Tensor::zeros([1, 3, 8, 8])).named("image");
    let w = tape.constant(Tensor::zeros([4, 2, 3, 3])).named("kernel");
    let msg = panic_message(|| {
        let _ = x.conv2d(w, Conv2dGeom::default());
    });
    assert!(
        msg.contains("conv2d") && msg.contains("image") && msg.contains("[4, 2, 3, 3]"),
        "{msg}"
    );
    assert!(
        msg.contains("need a weight of shape (4, 3, kh, kw)"),
        "{msg}"
    );
}

/// A pooling window that fits (x shape, window).
fn pool_case() -> impl Strategy<Value = ([usize; 4], tapegrad::ops::Pool2d)> {
    (
        1usize..=2,
        1usize..=3,
        3usize..=6,
        3usize..=6,
        1usize..=3,
        1usize..=3,
        1usize..=2,
        0usize..=1,
    )
        .prop_filter_map("the window must fit", |(n, c, h, w, kh, kw, s, p)| {
            let pool = tapegrad::ops::Pool2d {
                kernel: [kh, kw],
                stride: [s, s],
                padding: [p.min(kh / 2), p.min(kw / 2)],
            };
            (kh <= h && kw <= w).then_some(([n, c, h, w], pool))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn pooling_first_and_second_derivatives((xs, pool) in pool_case(), seed in 0u64..1000) {
        // Distinct values, so that no window has a tie within the
        // finite-difference step.
        let n: usize = xs.iter().product();
        let mut order: Vec<usize> = (0..n).collect();
        let noise = Tensor::<f64>::rand_uniform([n], 0.0, 1.0, seed);
        order.sort_by(|&a, &b| noise.data()[a].total_cmp(&noise.data()[b]));
        let mut v = vec![0.0; n];
        for (rank, &i) in order.iter().enumerate() {
            v[i] = -1.0 + 2.0 * rank as f64 / n as f64;
        }
        let x = Tensor::from_vec(v, xs);
        check("max_pool2d", &|v: &[Var<f64>]| v[0].max_pool2d(pool).tanh(), std::slice::from_ref(&x), seed);
        check("avg_pool2d", &|v: &[Var<f64>]| v[0].avg_pool2d(pool).tanh(), std::slice::from_ref(&x), seed);
        check("adaptive_avg_pool2d", &|v: &[Var<f64>]| v[0].adaptive_avg_pool2d([1, 1]).sin(), &[x], seed);
    }
}

#[test]
fn pooling_matches_pytorch_on_a_worked_example() {
    use tapegrad::ops::Pool2d;
    let tape = Tape::<f64>::new();
    // 1×1×3×3 with a padded 2×2 window moving by 2:
    // windows (zero-padded) [·,·;·,0], [·,·;1,2], [·,3;·,6], [4,5;7,8].
    let x = tape.var(Tensor::from_vec(
        (0..9).map(f64::from).collect(),
        [1, 1, 3, 3],
    ));
    let p = Pool2d {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [1, 1],
    };
    assert_eq!(x.max_pool2d(p).value().data(), &[0.0, 2.0, 6.0, 8.0]);
    // count_include_pad: every window divides by 4.
    assert_eq!(x.avg_pool2d(p).value().data(), &[0.0, 0.75, 2.25, 6.0]);
    // Ties: the first maximum in row-major order gets the gradient.
    let t = tape.var(Tensor::from_vec(vec![1.0, 1.0, 1.0, 1.0], [1, 1, 2, 2]));
    let g = t.max_pool2d(Pool2d::square(2)).sum().backward();
    assert_eq!(g[t].data(), &[1.0, 0.0, 0.0, 0.0]);
    // Adaptive pooling to a size that divides, and flatten.
    let y = tape.var(Tensor::from_vec(
        (0..16).map(f64::from).collect(),
        [1, 1, 4, 4],
    ));
    assert_eq!(
        y.adaptive_avg_pool2d([2, 2]).value().data(),
        &[2.5, 4.5, 10.5, 12.5]
    );
    assert_eq!(y.flatten(1).shape().as_slice(), &[1, 16]);
}

/// Images with one bright 2×2 blob, left or right half: the class.
fn blobs(n: usize, seed: u64) -> (Tensor<f32>, Vec<usize>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut x = Tensor::<f32>::zeros([n, 1, 8, 8]);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let class = rng.random_range(0..2usize);
        let (r, c) = (
            rng.random_range(0..7usize),
            rng.random_range(0..3usize) + 4 * class,
        );
        for (dr, dc) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            x.data_mut()[i * 64 + (r + dr) * 8 + c + dc] = 1.0;
        }
        y.push(class);
    }
    (x, y)
}

#[test]
fn a_small_cnn_learns_where_the_blob_is() {
    use tapegrad::nn::{
        accuracy, cross_entropy, Activation, Adam, Conv2d, Flatten, Linear, MaxPool2d, Module,
        Optimizer, ParamStore, Sequential,
    };
    use tapegrad::ops::Pool2d;
    let mut params = ParamStore::<f32>::new();
    let same = Conv2dGeom {
        padding: [1, 1],
        ..Default::default()
    };
    let model = Sequential::new()
        .add(Conv2d::new(&mut params, "0", 1, 4, [3, 3], same, 1))
        .add(Activation::Relu)
        .add(MaxPool2d(Pool2d::square(2)))
        .add(Flatten(1))
        .add(Linear::new(&mut params, "4", 4 * 16, 2, 2));
    let (x, y) = blobs(64, 3);
    let mut opt = Adam::new(1e-2);
    let tape = Tape::new();
    let mut first = None;
    for _ in 0..60 {
        tape.reset();
        let loss = cross_entropy(model.forward(&params, tape.constant(x.clone())), &y);
        first.get_or_insert(loss.item());
        opt.step(&mut params, &loss.backward());
    }
    let (xt, yt) = blobs(64, 4);
    let eval = Tape::new();
    let logits = eval.no_grad(|| model.forward(&params, eval.constant(xt)).value());
    let acc = accuracy(&logits, &yt);
    assert!(acc > 0.95, "held-out accuracy {acc} (first loss {first:?})");
}

#[test]
fn conv_layers_have_pytorch_shapes_names_and_init() {
    use tapegrad::nn::{Conv1d, Conv2d, ConvTranspose2d, ParamStore};
    let mut params = ParamStore::<f32>::new();
    let g = Conv2dGeom {
        groups: 2,
        ..Default::default()
    };
    let c = Conv2d::new(&mut params, "conv", 4, 6, [3, 5], g, 1);
    assert_eq!(params.value(c.weight).shape(), &[6, 2, 3, 5]);
    assert_eq!(params.id("conv.bias"), c.bias);
    let bound = 1.0 / ((2 * 3 * 5) as f32).sqrt();
    assert!(params
        .value(c.weight)
        .data()
        .iter()
        .all(|v| v.abs() <= bound));
    let t = ConvTranspose2d::new(&mut params, "up", 4, 6, [2, 2], g, [0, 0], 1);
    assert_eq!(params.value(t.weight).shape(), &[4, 3, 2, 2]);
    let d = Conv1d::new(&mut params, "seq", 3, 5, 4, 1, 0, 1);
    assert_eq!(params.value(d.weight).shape(), &[5, 3, 4]);
}

#[test]
fn a_conv_layer_fed_the_wrong_channels_names_itself_at_the_callers_line() {
    use tapegrad::nn::{Conv2d, Module, ParamStore};
    let mut params = ParamStore::<f32>::new();
    let c = Conv2d::new(
        &mut params,
        "features.0",
        3,
        8,
        [3, 3],
        Conv2dGeom::default(),
        1,
    );
    let tape = Tape::new();
    let x = tape.constant(Tensor::zeros([2, 1, 28, 28]));
    let msg = panic_message(|| {
        let _ = c.forward(&params, x);
    });
    assert!(
        msg.contains("Conv2d `features.0` (3 → 8 channels)")
            && msg.contains("[batch, 3, height, width]"),
        "{msg}"
    );
}

#[test]
fn batch_norm_first_and_second_derivatives() {
    use tapegrad::nn::batch_norm;
    for (shape, seed) in [
        (vec![3, 2, 2, 2], 1u64),
        (vec![4, 3], 2),
        (vec![2, 2, 3], 3),
    ] {
        let c = shape[1];
        let x = Tensor::<f64>::rand_uniform(shape.as_slice(), -1.0, 1.0, seed);
        let w = Tensor::<f64>::rand_uniform([c], 0.5, 1.5, seed + 1);
        let b = Tensor::<f64>::rand_uniform([c], -0.5, 0.5, seed + 2);
        check(
            "batch_norm",
            &|v: &[Var<f64>]| batch_norm(v[0], Some(v[1]), Some(v[2]), 1e-5).0.tanh(),
            &[x, w, b],
            seed,
        );
    }
}

#[test]
fn batch_norm_running_statistics_follow_pytorch() {
    use tapegrad::nn::{BatchNorm2d, Module, ParamStore};
    let mut params = ParamStore::<f64>::new();
    let bn = BatchNorm2d::new(&mut params, "bn", 2);
    let x = Tensor::<f64>::rand_uniform([3, 2, 2, 2], -1.0, 3.0, 7);
    // Per channel: mean and biased / unbiased variance over the 12 values.
    let stats = |c: usize| {
        let v: Vec<f64> = (0..3)
            .flat_map(|n| (0..4).map(move |k| (n, k)))
            .map(|(n, k)| x.data()[n * 8 + c * 4 + k])
            .collect();
        let m = v.iter().sum::<f64>() / 12.0;
        let ss = v.iter().map(|a| (a - m).powi(2)).sum::<f64>();
        (m, ss / 12.0, ss / 11.0)
    };
    let tape = Tape::new();
    let y = bn.forward(&params, tape.constant(x.clone())).value();
    for c in 0..2 {
        let (m, biased, unbiased) = stats(c);
        let got = params.buffer(bn.running_mean).data()[c];
        assert!((got - 0.1 * m).abs() < 1e-12, "{got} vs {}", 0.1 * m);
        let got = params.buffer(bn.running_var).data()[c];
        assert!((got - (0.9 + 0.1 * unbiased)).abs() < 1e-12);
        let want = (x.data()[c * 4] - m) / (biased + 1e-5).sqrt();
        assert!((y.data()[c * 4] - want).abs() < 1e-12);
    }
    assert_eq!(params.buffer(bn.num_batches_tracked).item(), 1.0);
    // Evaluation uses the running statistics and updates nothing.
    params.eval();
    let y = bn.forward(&params, tape.constant(x.clone())).value();
    let (rm, rv) = (
        params.buffer(bn.running_mean).data()[1],
        params.buffer(bn.running_var).data()[1],
    );
    assert!((y.data()[4] - (x.data()[4] - rm) / (rv + 1e-5).sqrt()).abs() < 1e-12);
    assert_eq!(params.buffer(bn.num_batches_tracked).item(), 1.0);
    // One value per channel cannot be normalised in training mode.
    params.train();
    let one = tape.constant(Tensor::zeros([1, 2, 1, 1]));
    let msg = panic_message(|| {
        let _ = bn.forward(&params, one);
    });
    assert!(msg.contains("more than 1 value per channel"), "{msg}");
    // PyTorch's state-dict names.
    let keys: Vec<String> = params.state_dict().into_keys().collect();
    assert_eq!(
        keys,
        [
            "bn.bias",
            "bn.num_batches_tracked",
            "bn.running_mean",
            "bn.running_var",
            "bn.weight"
        ]
    );
}

/// The CNN of `scripts/make_torch_cnn_fixture.py`, with PyTorch's layer
/// names.
fn torch_cnn(params: &mut tapegrad::nn::ParamStore<f32>) -> tapegrad::nn::Sequential<f32> {
    use tapegrad::nn::{
        Activation, AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Flatten,
        Linear, MaxPool2d, Sequential,
    };
    use tapegrad::ops::Pool2d;
    let geom = |stride, padding, dilation, groups| Conv2dGeom {
        stride,
        padding,
        dilation,
        groups,
    };
    Sequential::new()
        .add(Conv2d::new(
            params,
            "0",
            2,
            6,
            [3, 2],
            geom([2, 1], [1, 0], [1, 2], 1),
            0,
        ))
        .add(BatchNorm2d::new(params, "1", 6))
        .add(Activation::Relu)
        .add(Conv2d::new(
            params,
            "3",
            6,
            6,
            [3, 3],
            geom([1, 1], [1, 1], [1, 1], 3),
            0,
        ))
        .add(MaxPool2d(Pool2d {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [1, 1],
        }))
        .add(ConvTranspose2d::new(
            params,
            "5",
            6,
            4,
            [3, 3],
            geom([2, 2], [1, 1], [1, 1], 1),
            [1, 1],
            0,
        ))
        .add(AvgPool2d(Pool2d {
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1, 1],
        }))
        .add(Conv2d::new(
            params,
            "7",
            4,
            4,
            [3, 3],
            geom([1, 1], [2, 2], [2, 2], 4),
            0,
        ))
        .add(Activation::Tanh)
        .add(AdaptiveAvgPool2d([1, 1]))
        .add(Flatten(1))
        .add(Linear::new(params, "11", 4, 3, 0))
}

#[test]
fn a_pytorch_cnn_gives_pytorchs_outputs() {
    use tapegrad::nn::{Module, ParamStore};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
    let mut params = ParamStore::<f32>::new();
    let net = torch_cnn(&mut params);
    params
        .load(format!("{dir}torch_cnn.safetensors"))
        .expect("the state dict PyTorch wrote loads by its names");
    let bytes = std::fs::read(format!("{dir}torch_cnn_io.safetensors")).unwrap();
    let io = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let read = |name: &str| {
        let t = io.tensor(name).unwrap();
        let data = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        Tensor::from_vec(data, t.shape())
    };
    let x = read("input");
    let close = |what: &str, got: &Tensor<f32>, want: &Tensor<f32>| {
        assert_eq!(got.shape(), want.shape(), "{what}");
        let err = got.max_abs_diff(want);
        assert!(err < 1e-5, "{what}: {err}\n{got:?}\n{want:?}");
    };
    // Evaluation mode: the running statistics PyTorch saved.
    params.eval();
    let tape = Tape::new();
    let y = tape.no_grad(|| net.forward(&params, tape.constant(x.clone())).value());
    close("eval output", &y, &read("output_eval"));
    // Training mode: batch statistics, and the running ones move as PyTorch's.
    params.train();
    let tape = Tape::new();
    let y = net.forward(&params, tape.constant(x)).value();
    close("train output", &y, &read("output_train"));
    let bn_mean = params
        .buffer(params.buffer_id("1.running_mean").unwrap())
        .clone();
    let bn_var = params
        .buffer(params.buffer_id("1.running_var").unwrap())
        .clone();
    close("running mean", &bn_mean, &read("running_mean_after"));
    close("running var", &bn_var, &read("running_var_after"));
}

/// A small CNN's loss as a function of all its weights (one flat vector):
/// conv (stride 2, padding 1) · tanh · max-pool · depthwise conv · softplus ·
/// average pool · flatten · linear · cross-entropy against fixed labels.
fn cnn_loss<'t>(theta: Var<'t, f64>) -> Var<'t, f64> {
    let tape = theta.tape();
    let x = tape.constant(Tensor::from_fn([2, 2, 9, 8], |i| {
        ((i[0] * 31 + i[1] * 7 + i[2] * 3 + i[3]) as f64 * 0.37).sin()
    }));
    let (w1, rest) = (theta.narrow(0, 0, 4 * 2 * 9), 4 * 2 * 9);
    let w1 = w1.reshape([4, 2, 3, 3]);
    let w2 = theta.narrow(0, rest, 4 * 4).reshape([4, 1, 2, 2]);
    let fc = theta.narrow(0, rest + 16, 3 * 4).reshape([3, 4]);
    let g1 = Conv2dGeom {
        stride: [2, 2],
        padding: [1, 1],
        ..Default::default()
    };
    let depthwise = Conv2dGeom {
        groups: 4,
        ..Default::default()
    };
    let h = x.conv2d(w1, g1).tanh().max_pool2d(tapegrad::ops::Pool2d {
        kernel: [2, 2],
        stride: [1, 1],
        padding: [0, 0],
    });
    let h = h.conv2d(w2, depthwise).softplus();
    let h = h.adaptive_avg_pool2d([1, 1]).flatten(1);
    let logits = h.matmul_t(fc, false, true);
    -logits.log_softmax(1).gather(1, &[2, 0]).mean()
}

#[test]
fn the_hessian_of_a_cnn_loss_matches_differences_of_its_gradient() {
    use tapegrad::grad::{grad, hessian, hvp};
    let n = 4 * 2 * 9 + 16 + 12;
    let theta = Tensor::<f64>::rand_uniform([n], -0.8, 0.8, 11);
    let v = Tensor::<f64>::rand_uniform([n], -1.0, 1.0, 12);
    let hv = hvp(cnn_loss, &theta, &v);
    // Central differences of the (exact, reverse-mode) gradient along v.
    let eps = 1e-5;
    let shifted = |s: f64| {
        let t = Tensor::from_fn([n], |i| theta.get(i) + s * v.get(i));
        grad(cnn_loss, &t)
    };
    let (up, down) = (shifted(eps), shifted(-eps));
    for i in 0..n {
        let fd = (up.get(&[i]) - down.get(&[i])) / (2.0 * eps);
        let got = hv.get(&[i]);
        assert!(
            (got - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
            "Hv[{i}]: {got} vs {fd}"
        );
    }
    // The full Hessian is symmetric and its product with v is Hv.
    let h = hessian(cnn_loss, &theta);
    for i in 0..n {
        let row: f64 = (0..n).map(|j| h.get(&[i, j]) * v.get(&[j])).sum();
        assert!((row - hv.get(&[i])).abs() < 1e-10, "row {i}");
        for j in 0..i {
            assert!(
                (h.get(&[i, j]) - h.get(&[j, i])).abs() < 1e-10,
                "H[{i},{j}]"
            );
        }
    }
}

#[test]
fn dropout2d_drops_whole_channels_in_training_only() {
    use tapegrad::nn::{Dropout2d, Module, ParamStore};
    let mut params = ParamStore::<f64>::new();
    let d = Dropout2d::new(&mut params, "drop", 0.25, 3);
    let tape = Tape::new();
    let x = tape.var(Tensor::from_fn([20, 50, 3, 4], |i| 1.0 + i[2] as f64));
    let y = d.forward(&params, x);
    let (yv, xv) = (y.value(), x.value());
    let mut dropped = 0;
    for (plane, src) in yv.data().chunks(12).zip(xv.data().chunks(12)) {
        let kept = plane[0] != 0.0;
        dropped += usize::from(!kept);
        for (v, s) in plane.iter().zip(src) {
            let want = if kept { s / 0.75 } else { 0.0 };
            assert!(
                (v - want).abs() < 1e-12,
                "a channel is dropped or kept whole"
            );
        }
    }
    assert!(
        (180..320).contains(&dropped),
        "{dropped} of 1000 channels dropped"
    );
    // The gradient follows the mask.
    let g = y.sum().backward();
    for (gp, yp) in g[x].data().chunks(12).zip(yv.data().chunks(12)) {
        let want = if yp[0] != 0.0 { 1.0 / 0.75 } else { 0.0 };
        assert!(gp.iter().all(|&v| (v - want).abs() < 1e-12));
    }
    params.eval();
    assert_eq!(d.forward(&params, x).value(), xv);
    // Not an image batch: the layer says what it expects.
    let msg = panic_message(|| {
        let _ = d.forward(&params, tape.constant(Tensor::zeros([4, 5])));
    });
    assert!(
        msg.contains("Dropout2d `drop`") && msg.contains("[batch, channels, height, width]"),
        "{msg}"
    );
}
