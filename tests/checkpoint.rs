//! Checkpoints: bit-identical round trips, typed errors, atomic saves, and
//! a file written by Python's `safetensors` package.

use std::path::PathBuf;
use tapegrad::data::MiniBatches;
use tapegrad::nn::{
    cross_entropy, Activation, Adam, CheckpointError, LoadOptions, Mismatch, Mlp, Module,
    Optimizer, ParamStore, Precision,
};
use tapegrad::{Tape, Tensor};

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-ckpt-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("model.safetensors")
}

fn model<T: tapegrad::Element>(seed: u64) -> (ParamStore<T>, Mlp<T>) {
    let mut params = ParamStore::new();
    let mlp = Mlp::new(&mut params, "mlp", &[3, 5, 2], Activation::Tanh, seed);
    (params, mlp)
}

fn bits(p: &ParamStore<f32>) -> Vec<u32> {
    p.iter()
        .flat_map(|(_, _, t)| t.data().iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

#[test]
fn round_trip_is_bit_identical_in_f32_and_f64() {
    let path = temp("round");
    let (a, _) = model::<f32>(1);
    a.save(&path).unwrap();
    let (mut b, _) = model::<f32>(2);
    assert_ne!(bits(&a), bits(&b));
    b.load(&path).unwrap();
    assert_eq!(bits(&a), bits(&b));

    let (a64, _) = model::<f64>(1);
    a64.save(&path).unwrap();
    let (mut b64, _) = model::<f64>(3);
    b64.load(&path).unwrap();
    for ((_, _, x), (_, _, y)) in a64.iter().zip(b64.iter()) {
        assert_eq!(x, y);
    }
}

fn train(params: &mut ParamStore<f32>, mlp: &Mlp<f32>, opt: &mut Adam<f32>, steps: usize) {
    let x = Tensor::rand_uniform([6, 3], -1.0, 1.0, 9);
    let tape = Tape::new();
    for _ in 0..steps {
        tape.reset();
        let loss = cross_entropy(
            mlp.forward(params, tape.constant(x.clone())),
            &[0, 1, 0, 1, 1, 0],
        );
        opt.step(params, &loss.backward());
    }
}

#[test]
fn optimizer_state_round_trips_so_training_resumes_exactly() {
    let path = temp("optim");
    let (mut p1, m1) = model::<f32>(4);
    let mut o1 = Adam::new(0.01);
    train(&mut p1, &m1, &mut o1, 5);
    p1.save_with_optimizer(&path, &o1).unwrap();
    train(&mut p1, &m1, &mut o1, 5);

    let (mut p2, m2) = model::<f32>(99);
    let mut o2 = Adam::new(0.01);
    p2.load_with_optimizer(&path, &mut o2).unwrap();
    assert_eq!(o2.steps(), 5);
    train(&mut p2, &m2, &mut o2, 5);
    assert_eq!(bits(&p1), bits(&p2));
}

#[test]
fn mismatches_are_typed_errors_and_change_nothing() {
    let path = temp("mismatch");
    let (small, _) = model::<f32>(1);
    small.save(&path).unwrap();

    let mut wide = ParamStore::<f32>::new();
    Mlp::new(&mut wide, "mlp", &[3, 6, 2], Activation::Tanh, 1);
    let before = bits(&wide);
    match wide.load(&path) {
        Err(CheckpointError::Mismatch { problems, .. }) => {
            assert!(problems.contains(&Mismatch::Shape {
                name: "mlp.0.weight".into(),
                expected: vec![6, 3],
                found: vec![5, 3],
            }));
        }
        other => panic!("expected a shape error, got {other:?}"),
    }
    assert_eq!(
        bits(&wide),
        before,
        "a failed load must not change the model"
    );

    let mut renamed = ParamStore::<f32>::new();
    Mlp::new(&mut renamed, "net", &[3, 5, 2], Activation::Tanh, 1);
    let e = renamed.load(&path).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { problems, .. } if problems.contains(&Mismatch::Missing("net.0.weight".into()))),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("`net.0.weight` is missing from the file"),
        "{e}"
    );

    let mut fewer = ParamStore::<f32>::new();
    fewer.add("mlp.0.weight", Tensor::zeros([5, 3]));
    let e = fewer.load(&path).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { problems, .. } if problems.contains(&Mismatch::Unexpected("mlp.2.bias".into()))),
        "{e}"
    );

    let (mut as_f64, _) = model::<f64>(1);
    let e = as_f64.load(&path).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Mismatch { problems, .. } if matches!(&problems[0], Mismatch::Dtype { expected, found, .. } if expected == "F64" && found == "F32")),
        "{e}"
    );
}

#[test]
fn a_strict_load_reports_every_mismatch_at_once() {
    let path = temp("every");
    let (small, _) = model::<f32>(1);
    small.save(&path).unwrap();
    let mut other = ParamStore::<f32>::new();
    Mlp::new(&mut other, "mlp", &[3, 6, 2], Activation::Tanh, 1); // two shapes differ
    other.add("extra", Tensor::zeros([1])); // missing from the file
    other.add_buffer("bn.running_mean", Tensor::zeros([2])); // missing too
    let e = other.load(&path).unwrap_err();
    let CheckpointError::Mismatch { problems, .. } = &e else {
        panic!("{e}")
    };
    let shapes = problems
        .iter()
        .filter(|p| matches!(p, Mismatch::Shape { .. }))
        .count();
    let missing: Vec<_> = problems
        .iter()
        .filter_map(|p| match p {
            Mismatch::Missing(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(shapes, 3, "{e}"); // mlp.0.weight, mlp.0.bias, mlp.2.weight
    assert_eq!(missing, ["bn.running_mean", "extra"], "{e}");
    assert!(e.to_string().contains("5 problems"), "{e}");
}

#[test]
fn a_non_strict_load_returns_the_missing_and_unexpected_names() {
    let path = temp("nonstrict");
    let mut saved = ParamStore::<f32>::new();
    Mlp::new(&mut saved, "mlp", &[3, 5, 2], Activation::Tanh, 1);
    saved.add("head.weight", Tensor::ones([2]));
    saved.save(&path).unwrap();
    let (mut p, _) = model::<f32>(2);
    p.add("other", Tensor::zeros([3]));
    let report = p
        .load_with(&path, &LoadOptions::new().strict(false))
        .unwrap();
    assert_eq!(report.missing, ["other"]);
    assert_eq!(report.unexpected, ["head.weight"]);
    assert_eq!(
        p.value(p.id("mlp.0.weight").unwrap()),
        saved.value(saved.id("mlp.0.weight").unwrap())
    );
}

#[test]
fn names_are_remapped_on_load() {
    let path = temp("remap");
    let mut wrapped = ParamStore::<f32>::new();
    Mlp::new(&mut wrapped, "module.mlp", &[3, 5, 2], Activation::Tanh, 1);
    wrapped.save(&path).unwrap();
    let (mut p, _) = model::<f32>(2);
    let e = p.load(&path).unwrap_err();
    assert!(
        e.to_string()
            .contains("LoadOptions::new().strip_prefix(\"module.\")"),
        "{e}"
    );
    p.load_with(&path, &LoadOptions::new().strip_prefix("module."))
        .unwrap();
    let w = |s: &ParamStore<f32>, n: &str| s.value(s.id(n).unwrap()).clone();
    assert_eq!(w(&p, "mlp.0.weight"), w(&wrapped, "module.mlp.0.weight"));
    let mut bare = ParamStore::<f32>::new();
    Mlp::new(&mut bare, "", &[3, 5, 2], Activation::Tanh, 3);
    bare.save(&path).unwrap();
    p.load_with(&path, &LoadOptions::new().add_prefix("mlp."))
        .unwrap();
    assert_eq!(w(&p, "mlp.2.bias"), w(&bare, "2.bias"));
}

#[test]
fn other_precisions_convert_on_load_when_asked_and_back() {
    let path = temp("dtype");
    let (a, _) = model::<f32>(1);
    let convert = LoadOptions::new().convert_dtype(true);
    for (precision, tolerance) in [
        (Precision::F16, 1e-3),
        (Precision::BF16, 1e-2),
        (Precision::F64, 0.0),
    ] {
        a.save_as(&path, precision).unwrap();
        let (mut b, _) = model::<f32>(2);
        let e = b.load(&path).unwrap_err();
        assert!(e.to_string().contains("convert_dtype"), "{e}");
        b.load_with(&path, &convert).unwrap();
        for ((_, name, x), (_, _, y)) in a.iter().zip(b.iter()) {
            let d = x.max_abs_diff(y);
            assert!(d <= tolerance, "{precision:?} {name}: {d}");
        }
    }
    // f32 into an f64 model and back, exactly.
    a.save(&path).unwrap();
    let (mut wide, _) = model::<f64>(3);
    wide.load_with(&path, &convert).unwrap();
    wide.save(&path).unwrap();
    let (mut back, _) = model::<f32>(4);
    back.load_with(&path, &convert).unwrap();
    assert_eq!(bits(&a), bits(&back));
}

#[test]
fn buffers_are_saved_and_loaded_by_name_and_integer_counters_read() {
    let path = temp("buffers");
    let mut a = ParamStore::<f32>::new();
    a.add("bn.weight", Tensor::ones([2]));
    let mean = a.add_buffer("bn.running_mean", Tensor::from_vec(vec![0.5, -0.5], [2]));
    let count = a.add_buffer("bn.num_batches_tracked", Tensor::scalar(0.0));
    assert_eq!(a.num_elements(), 2, "buffers are not weights");
    assert_eq!((a.trainable().count(), a.num_buffers()), (1, 2));
    // A buffer changes through &ParamStore (as a layer's forward does) and
    // is saved by name.
    a.set_buffer(count, Tensor::scalar(3.0));
    a.save(&path).unwrap();
    let mut b = ParamStore::<f32>::new();
    b.add("bn.weight", Tensor::zeros([2]));
    let b_mean = b.add_buffer("bn.running_mean", Tensor::zeros([2]));
    let b_count = b.add_buffer("bn.num_batches_tracked", Tensor::scalar(0.0));
    b.load(&path).unwrap();
    assert_eq!(b.buffer(b_mean).data(), &[0.5, -0.5]);
    assert_eq!(b.buffer(b_count).item(), 3.0);
    // A counter stored as int64, as PyTorch stores num_batches_tracked.
    let wb: Vec<u8> = [1.0f32, 1.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let mb: Vec<u8> = [0.25f32, 0.75]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let nb = 7i64.to_le_bytes().to_vec();
    fn view(
        d: safetensors::Dtype,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> safetensors::tensor::TensorView<'_> {
        safetensors::tensor::TensorView::new(d, shape, bytes).unwrap()
    }
    let views = vec![
        ("bn.weight", view(safetensors::Dtype::F32, vec![2], &wb)),
        (
            "bn.running_mean",
            view(safetensors::Dtype::F32, vec![2], &mb),
        ),
        (
            "bn.num_batches_tracked",
            view(safetensors::Dtype::I64, vec![], &nb),
        ),
    ];
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    a.load(&path).unwrap();
    assert_eq!(a.buffer(mean).data(), &[0.25, 0.75]);
    assert_eq!(a.buffer(count).item(), 7.0);
    let state = a.state_dict();
    assert_eq!(state.len(), 3);
    assert_eq!(state["bn.num_batches_tracked"].item(), 7.0);
}

#[test]
fn load_with_optimizer_on_a_file_without_optimizer_state_is_an_error_unless_asked() {
    let path = temp("noopt");
    let (p1, _) = model::<f32>(1);
    p1.save(&path).unwrap();
    let (mut p2, m2) = model::<f32>(2);
    let mut opt = Adam::new(0.01);
    train(&mut p2, &m2, &mut opt, 2);
    let before = bits(&p2);
    let e = p2.load_with_optimizer(&path, &mut opt).unwrap_err();
    assert!(matches!(e, CheckpointError::NoOptimizerState { .. }), "{e}");
    assert_eq!(bits(&p2), before, "nothing changes");
    assert_eq!(opt.steps(), 2);
    p2.load_with_optimizer_and(&path, &mut opt, &LoadOptions::new().fresh_optimizer(true))
        .unwrap();
    assert_eq!((opt.steps(), bits(&p2)), (0, bits(&p1)));
    assert!(opt.slots().iter().all(|(_, s)| s.is_empty()));
}

/// A model with dropout trained on shuffled mini-batches for steps
/// `from..to` of the run (one batch per step).
fn train_dropout(params: &mut ParamStore<f32>, mlp: &Mlp<f32>, opt: &mut Adam<f32>, to: u64) {
    let x = Tensor::<f32>::rand_uniform([30, 3], -1.0, 1.0, 9);
    let y: Vec<usize> = (0..30).map(|i| i % 2).collect();
    let batches = MiniBatches::new(&x, &y, 8, 5);
    let tape = Tape::new();
    while opt.steps() < to {
        let (epoch, first) = batches.position(opt.steps());
        for (xb, yb) in batches.epoch_from(epoch, first) {
            if opt.steps() == to {
                break;
            }
            tape.reset();
            let loss = cross_entropy(mlp.forward(params, tape.constant(xb)), &yb);
            opt.step(params, &loss.backward());
        }
    }
}

#[test]
fn twenty_steps_save_load_twenty_more_equal_forty_with_dropout_on() {
    let path = temp("resume");
    let build = |seed| {
        let mut params = ParamStore::<f32>::new();
        let mlp = Mlp::with_dropout(&mut params, "mlp", &[3, 16, 2], Activation::Relu, 0.3, seed);
        (params, mlp)
    };
    let (mut straight, m1) = build(1);
    let mut o1 = Adam::new(0.01);
    train_dropout(&mut straight, &m1, &mut o1, 40);

    let (mut first, m2) = build(1);
    let mut o2 = Adam::new(0.01);
    train_dropout(&mut first, &m2, &mut o2, 20);
    first.save_with_optimizer(&path, &o2).unwrap();
    drop(first);

    let (mut resumed, m3) = build(77); // other weights, other dropout seeds
    let mut o3 = Adam::new(0.01);
    resumed.load_with_optimizer(&path, &mut o3).unwrap();
    assert_eq!(o3.steps(), 20);
    train_dropout(&mut resumed, &m3, &mut o3, 40);
    assert_eq!(bits(&straight), bits(&resumed));
}

#[test]
fn corrupt_and_truncated_files_are_errors_not_panics() {
    let path = temp("corrupt");
    let (p, _) = model::<f32>(1);
    p.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (mut q, _) = model::<f32>(2);
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    assert!(matches!(
        q.load(&path),
        Err(CheckpointError::Corrupt { .. })
    ));
    std::fs::write(&path, b"not a checkpoint at all").unwrap();
    assert!(matches!(
        q.load(&path),
        Err(CheckpointError::Corrupt { .. })
    ));
    let e = q
        .load(path.with_file_name("absent.safetensors"))
        .unwrap_err();
    assert!(matches!(e, CheckpointError::Io { .. }));
}

#[test]
fn a_failed_save_keeps_the_previous_checkpoint() {
    let path = temp("atomic");
    let (p, _) = model::<f32>(1);
    p.save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    // Block the temporary file with a directory: the save must fail
    // without touching the existing checkpoint.
    let tmp = path.with_file_name(".model.safetensors.tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (other, _) = model::<f32>(2);
    assert!(matches!(other.save(&path), Err(CheckpointError::Io { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), good);
    std::fs::remove_dir(&tmp).unwrap();
    other.save(&path).unwrap();
    assert_ne!(std::fs::read(&path).unwrap(), good);
}

#[test]
fn a_file_written_by_python_safetensors_loads() {
    // scripts/make_safetensors_fixture.py: nn.Sequential(Linear(3, 4),
    // ReLU(), Linear(4, 2)) names, element k of tensor t is
    // 0.01 (k + 1) (-1)^(k + t).
    let mut params = ParamStore::<f32>::new();
    let mlp = Mlp::new(&mut params, "", &[3, 4, 2], Activation::Relu, 0);
    params
        .load(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/torch_mlp.safetensors"
        ))
        .unwrap();
    for (t, name) in ["0.weight", "0.bias", "2.weight", "2.bias"]
        .iter()
        .enumerate()
    {
        let v = params.value(params.id(name).unwrap());
        for (k, x) in v.data().iter().enumerate() {
            let want = (0.01 * (k + 1) as f64 * if (k + t) % 2 == 0 { 1.0 } else { -1.0 }) as f32;
            assert_eq!(*x, want, "{name}[{k}]");
        }
    }
    let tape = Tape::new();
    let y = mlp.forward(&params, tape.constant(Tensor::ones([1, 3])));
    assert_eq!(y.shape().as_slice(), &[1, 2]);
}
