//! Checkpoints: bit-identical round trips, typed errors, atomic saves, and
//! a file written by Python's `safetensors` package.

use std::path::PathBuf;
use tapegrad::nn::{
    cross_entropy, Activation, Adam, CheckpointError, Mlp, Module, Optimizer, ParamStore,
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
        Err(CheckpointError::Shape {
            name,
            expected,
            found,
            ..
        }) => {
            assert_eq!(
                (name.as_str(), expected, found),
                ("mlp.0.weight", vec![6, 3], vec![5, 3])
            );
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
        matches!(&e, CheckpointError::Missing { name, .. } if name == "net.0.weight"),
        "{e}"
    );
    assert!(e
        .to_string()
        .ends_with("parameter `net.0.weight` is missing from the file"));

    let mut fewer = ParamStore::<f32>::new();
    fewer.add("mlp.0.weight", Tensor::zeros([5, 3]));
    let e = fewer.load(&path).unwrap_err();
    assert!(matches!(e, CheckpointError::Unexpected { .. }), "{e}");

    let (mut as_f64, _) = model::<f64>(1);
    let e = as_f64.load(&path).unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Dtype { expected, found, .. } if expected == "F64" && found == "F32"),
        "{e}"
    );
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
