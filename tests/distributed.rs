//! Data-parallel training over MPI (feature `mpi`).
//!
//! `cargo test --release --features mpi --test distributed` runs this file
//! as a launcher: it starts itself under `mpirun` with 2 processes, then 3
//! (an odd world, uneven splits), and then once more with a process that
//! panics, which must end the whole job quickly with its message. Under
//! `mpirun`, every process runs the checks below.
//!
//! As root (CI), Open MPI needs `OMPI_ALLOW_RUN_AS_ROOT=1` and
//! `OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1`; `.ci/run` sets them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tapegrad::data::ShardedBatches;
use tapegrad::nn::distributed::{Combine, DataParallel, DistError, World};
use tapegrad::nn::{
    cross_entropy_with, Activation, Adam, GradAccumulator, Mlp, Module, Optimizer, ParamStore,
    Reduction,
};
use tapegrad::{Tape, Tensor, Var};

const SCENARIO: &str = "TAPEGRAD_DIST_SCENARIO";

fn main() {
    let under_mpi = std::env::var_os("OMPI_COMM_WORLD_SIZE").is_some()
        || std::env::var_os("PMI_SIZE").is_some();
    if !under_mpi {
        return launch();
    }
    let world = World::init().expect("MPI starts");
    match std::env::var(SCENARIO).as_deref() {
        Ok("panic") => panicking_process(&world),
        Ok("wrong-store") => wrong_store(&world),
        Ok("unused-parameter") => unused_parameter(&world),
        Ok("different-buckets") => different_buckets(&world),
        _ => checks(&world),
    }
}

/// Starts this test under mpirun: the checks with 2 and 3 processes, then
/// the panic scenario.
fn launch() {
    let exe = std::env::current_exe().expect("the test's own path");
    if Command::new("mpirun").arg("--version").output().is_err() {
        let why = "mpirun not found: install Debian's openmpi-bin and libopenmpi-dev";
        assert!(
            std::env::var_os("CI").is_none(),
            "{why} (CI must run these tests)"
        );
        println!("distributed: SKIPPED: {why}");
        return;
    }
    for np in ["2", "3"] {
        let start = Instant::now();
        let status = mpirun(np).arg(&exe).status().expect("mpirun starts");
        assert!(
            status.success(),
            "distributed checks with {np} processes failed: {status}"
        );
        println!(
            "distributed: checks with {np} processes passed ({:.1?})",
            start.elapsed()
        );
    }
    // A process that panics ends the job: non-zero exit, its message, and
    // no hang (the other process is blocked in a barrier). The misuses
    // below are panics too, so they end the job the same way.
    for (scenario, message) in [
        ("panic", "process 1 fails on purpose"),
        (
            "wrong-store",
            "not the ParamStore this DataParallel was built with",
        ),
        (
            "unused-parameter",
            "parameter `b` was not used in this process's forward",
        ),
        (
            "different-buckets",
            "chose different bucket sizes or Combine modes",
        ),
    ] {
        let start = Instant::now();
        let text = expect_abort(&exe, scenario);
        assert!(
            text.contains(message) && text.contains("aborting the MPI job"),
            "{scenario}: the panic's message must be shown:\n{text}"
        );
        println!(
            "distributed: {scenario} ended the job in {:.1?}",
            start.elapsed()
        );
    }
}

/// Runs `scenario` on 2 processes and returns its output, checking that
/// the job failed within 60 s.
fn expect_abort(exe: &std::path::Path, scenario: &str) -> String {
    let mut child = mpirun("2")
        .args(["-x", &format!("{SCENARIO}={scenario}")])
        .arg(exe)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("{scenario}: the panicking process did not end the MPI job within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "{scenario}: the job must fail:\n{text}"
    );
    text
}

fn mpirun(np: &str) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--oversubscribe", "-np", np, "-x", "TAPEGRAD_THREADS=1"]);
    c
}

fn panicking_process(world: &World) {
    if world.rank() == 1 {
        std::thread::sleep(Duration::from_millis(200));
        panic!("process 1 fails on purpose");
    }
    world.barrier(); // would wait forever without the abort
    unreachable!("the barrier cannot complete");
}

/// Gradients of another store than the one DataParallel was built with.
fn wrong_store(world: &World) {
    let mut params = ParamStore::<f64>::new();
    let w = params.add("w", Tensor::ones([3]));
    let mut other = ParamStore::<f64>::new();
    other.add("w", Tensor::ones([3]));
    let mut ddp = DataParallel::new(world, &mut params).unwrap();
    let tape = Tape::new();
    let loss = params.var(&tape, w).sum();
    ddp.backward(&other, loss);
    world.barrier();
}

/// Processes configured with different bucket sizes.
fn different_buckets(world: &World) {
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", Tensor::ones([300]));
    let b = params.add("b", Tensor::ones([300]));
    let cap = if world.rank() == 0 { 1 << 20 } else { 1024 };
    let mut ddp = DataParallel::new(world, &mut params)
        .unwrap()
        .bucket_bytes(cap, cap);
    let tape = Tape::new();
    let loss = (params.var(&tape, a) * params.var(&tape, b)).sum();
    ddp.backward(&params, loss);
    world.barrier();
}

/// Process 1 leaves out a parameter process 0 uses: process 1 must not
/// silently skip the update process 0 makes.
fn unused_parameter(world: &World) {
    let mut params = ParamStore::<f64>::new();
    let a = params.add("a", Tensor::ones([3]));
    let b = params.add("b", Tensor::ones([3]));
    let mut ddp = DataParallel::new(world, &mut params).unwrap();
    let tape = Tape::new();
    let mut loss = params.var(&tape, a).square().sum();
    if world.rank() == 0 {
        loss = loss + params.var(&tape, b).sum();
    }
    ddp.backward(&params, loss);
    world.barrier();
    world.barrier();
}

/// Runs every check on this process; a failed assertion panics, which
/// aborts the job with its message.
fn checks(world: &World) {
    gradients_equal_the_single_process_union_batch(world);
    if world.size() == 2 {
        gradients_are_bitwise_equal_when_the_sums_match(world);
    }
    adam_steps_match_one_process_at_the_whole_batch(world);
    bucketing_and_overlap_do_not_change_the_result(world);
    accumulation_without_communication_matches(world);
    a_different_model_is_an_error_on_every_process(world);
    save_on_root_reports_everywhere(world);
    if world.is_root() {
        println!(
            "all distributed checks passed on {} processes",
            world.size()
        );
    }
}

const N: usize = 30;
const FEATURES: usize = 6;

fn data() -> (Tensor<f64>, Vec<usize>) {
    let x = Tensor::randn([N, FEATURES], 11);
    let labels = (0..N).map(|i| (i * 7 + i / 3) % 3).collect();
    (x, labels)
}

fn model(params: &mut ParamStore<f64>) -> Mlp<f64> {
    Mlp::new(params, "mlp", &[FEATURES, 16, 8, 3], Activation::Tanh, 42)
}

/// The summed cross-entropy of rows `idx`, divided by the global batch
/// size: summed over processes, the mean loss of the global batch.
fn part_loss<'t>(
    m: &Mlp<f64>,
    params: &ParamStore<f64>,
    tape: &'t Tape<f64>,
    (x, labels): &(Tensor<f64>, Vec<usize>),
    idx: &[usize],
    global: usize,
) -> Var<'t, f64> {
    let logits = m.forward(params, tape.constant(x.rows(idx)));
    let y: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
    cross_entropy_with(logits, &y, Reduction::Sum) * (1.0 / global as f64)
}

fn grads_of(params: &ParamStore<f64>, grads: &tapegrad::Gradients<'_, f64>) -> Vec<f64> {
    params
        .trainable()
        .flat_map(|id| {
            params
                .grad(grads, id)
                .expect("every parameter has a gradient")
                .to_vec()
        })
        .collect()
}

fn values(params: &ParamStore<f64>) -> Vec<f64> {
    params.iter().flat_map(|(_, _, v)| v.to_vec()).collect()
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// A global batch that does not divide evenly by 3 (10 examples).
const BATCH: usize = 10;

fn gradients_equal_the_single_process_union_batch(world: &World) {
    let d = data();
    let mut params = ParamStore::new();
    let m = model(&mut params);
    let mut ddp = DataParallel::new(world, &mut params)
        .unwrap()
        .combine(Combine::Sum);
    let shards = ShardedBatches::new(N, BATCH, 5, world.size(), world.rank());
    let union: Vec<Vec<usize>> = ShardedBatches::new(N, BATCH, 5, 1, 0).epoch(0).collect();
    let tape = Tape::new();
    for (step, idx) in shards.epoch(0).enumerate() {
        let global = shards.global_batch(step);
        tape.reset();
        let loss = part_loss(&m, &params, &tape, &d, &idx, global);
        let got = grads_of(&params, &ddp.backward(&params, loss));
        // The same model on one process, on the whole global batch.
        let single = Tape::new();
        let loss = part_loss(&m, &params, &single, &d, &union[step], global);
        let want = grads_of(&params, &loss.backward());
        let diff = max_rel_diff(&got, &want);
        assert!(
            diff <= 1e-12,
            "step {step}: reduced gradient differs from the union batch's by {diff:e}"
        );
    }
}

/// With each process's part recorded as its own loss term on one
/// process, every gradient is the same sum of the same numbers: the
/// reduced gradients are bitwise those of one process (2 processes: one
/// addition, which does not depend on order).
fn gradients_are_bitwise_equal_when_the_sums_match(world: &World) {
    let d = data();
    let mut params = ParamStore::new();
    let m = model(&mut params);
    let mut ddp = DataParallel::new(world, &mut params)
        .unwrap()
        .combine(Combine::Sum);
    let parts: Vec<Vec<usize>> = (0..2)
        .map(|r| {
            ShardedBatches::new(N, BATCH, 9, 2, r)
                .epoch(0)
                .next()
                .unwrap()
        })
        .collect();
    let tape = Tape::new();
    let loss = part_loss(&m, &params, &tape, &d, &parts[world.rank()], BATCH);
    let got = grads_of(&params, &ddp.backward(&params, loss));
    let single = Tape::new();
    let loss = part_loss(&m, &params, &single, &d, &parts[0], BATCH)
        + part_loss(&m, &params, &single, &d, &parts[1], BATCH);
    let want = grads_of(&params, &loss.backward());
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "reduced gradients are not bitwise equal to one process's (max rel diff {:e})",
        max_rel_diff(&got, &want)
    );
}

/// 20 Adam steps on every process's part equal 20 steps of one process
/// on the whole batch, and every process ends with identical parameters.
fn adam_steps_match_one_process_at_the_whole_batch(world: &World) {
    let d = data();
    let (mut params, mut single_params) = (ParamStore::new(), ParamStore::new());
    let (m, single_m) = (model(&mut params), model(&mut single_params));
    // Equal halves and mean losses with 2 processes (Combine::Mean, the
    // default); uneven parts and global scaling otherwise (Combine::Sum).
    let even = world.size() == 2;
    let batch = if even { 12 } else { BATCH };
    let combine = if even { Combine::Mean } else { Combine::Sum };
    let mut ddp = DataParallel::new(world, &mut params)
        .unwrap()
        .combine(combine);
    let (mut opt, mut single_opt) = (Adam::new(1e-2), Adam::new(1e-2));
    let shards = ShardedBatches::new(N, batch, 3, world.size(), world.rank());
    let union = ShardedBatches::new(N, batch, 3, 1, 0);
    let (tape, single) = (Tape::new(), Tape::new());
    let mut steps = 0;
    for epoch in 0.. {
        for (step, (idx, all)) in shards.epoch(epoch).zip(union.epoch(epoch)).enumerate() {
            let global = shards.global_batch(step);
            tape.reset();
            let loss = if even {
                part_loss(&m, &params, &tape, &d, &idx, idx.len())
            } else {
                part_loss(&m, &params, &tape, &d, &idx, global)
            };
            let grads = ddp.backward(&params, loss);
            opt.step(&mut params, &grads);
            single.reset();
            let loss = part_loss(&single_m, &single_params, &single, &d, &all, global);
            single_opt.step(&mut single_params, &loss.backward());
            steps += 1;
            if steps == 20 {
                let diff = max_rel_diff(&values(&params), &values(&single_params));
                assert!(
                    diff <= 1e-10,
                    "after 20 Adam steps: {diff:e} from one process"
                );
                assert!(world.agree(&params), "parameters differ between processes");
                assert!(
                    values(&params) != values(&model_fresh()),
                    "the steps changed nothing"
                );
                return;
            }
        }
    }
}

fn model_fresh() -> ParamStore<f64> {
    let mut p = ParamStore::new();
    model(&mut p);
    p
}

fn bucketing_and_overlap_do_not_change_the_result(world: &World) {
    let d = data();
    let mut results = Vec::new();
    for (first, rest, overlap) in [(1 << 20, 25 << 20, true), (64, 256, true), (64, 256, false)] {
        let mut params = ParamStore::new();
        let m = model(&mut params);
        let mut ddp = DataParallel::new(world, &mut params)
            .unwrap()
            .bucket_bytes(first, rest)
            .overlap(overlap);
        let idx = ShardedBatches::new(N, 12, 1, world.size(), world.rank())
            .epoch(0)
            .next()
            .unwrap();
        let tape = Tape::new();
        let loss = part_loss(&m, &params, &tape, &d, &idx, idx.len());
        let g = grads_of(&params, &ddp.backward(&params, loss));
        let t = ddp.last_timing();
        assert_eq!(t.buckets.len(), ddp.num_buckets());
        assert_eq!(t.bytes(), params.num_elements() * 8);
        results.push((ddp.num_buckets(), g));
    }
    assert_eq!(results[0].0, 1, "the MLP fits one default bucket");
    assert!(
        results[1].0 >= 4,
        "64/256-byte caps give many buckets, got {}",
        results[1].0
    );
    for (n, g) in &results[1..] {
        let diff = max_rel_diff(g, &results[0].1);
        // Bitwise with 2 processes; the 3-process sum may be associated
        // differently for different message sizes.
        let tol = if world.size() == 2 { 0.0 } else { 1e-15 };
        assert!(diff <= tol, "{n} buckets differ from one by {diff:e}");
    }
}

/// Two micro-batches accumulated locally, then one all-reduce, give the
/// gradient of one backward over both (PyTorch's no_sync).
fn accumulation_without_communication_matches(world: &World) {
    let d = data();
    let mut params = ParamStore::new();
    let m = model(&mut params);
    let mut ddp = DataParallel::new(world, &mut params)
        .unwrap()
        .combine(Combine::Sum);
    let idx = ShardedBatches::new(N, 12, 4, world.size(), world.rank())
        .epoch(0)
        .next()
        .unwrap();
    let (a, b) = idx.split_at(idx.len() / 2);
    let mut acc = GradAccumulator::new();
    let tape = Tape::new();
    for part in [a, b] {
        tape.reset();
        acc.add(
            &params,
            &part_loss(&m, &params, &tape, &d, part, 12).backward(),
            1.0,
        );
    }
    ddp.all_reduce(&params, &mut acc);
    let got: Vec<f64> = params
        .trainable()
        .flat_map(|id| acc.get(id).unwrap().to_vec())
        .collect();
    tape.reset();
    let loss = part_loss(&m, &params, &tape, &d, &idx, 12);
    let want = grads_of(&params, &ddp.backward(&params, loss));
    let diff = max_rel_diff(&got, &want);
    assert!(
        diff <= 1e-13,
        "accumulated then reduced differs by {diff:e}"
    );
}

fn a_different_model_is_an_error_on_every_process(world: &World) {
    let mut params = ParamStore::<f64>::new();
    model(&mut params);
    if world.rank() == world.size() - 1 {
        params.add("extra", Tensor::zeros([2]));
    }
    match DataParallel::new(world, &mut params) {
        Err(DistError::ModelMismatch(why)) => {
            assert!(why.contains("parameters and buffers"), "{why}")
        }
        other => panic!("expected a model mismatch, got {:?}", other.map(|_| ())),
    }
    // Same count, different shape.
    let mut params = ParamStore::<f64>::new();
    let width = if world.rank() == 1 { 5 } else { 4 };
    params.add("w", Tensor::zeros([width]));
    match DataParallel::new(world, &mut params) {
        Err(DistError::ModelMismatch(why)) => assert!(why.contains("`w` [4]"), "{why}"),
        other => panic!("expected a model mismatch, got {:?}", other.map(|_| ())),
    }
}

fn save_on_root_reports_everywhere(world: &World) {
    let mut params = ParamStore::<f64>::new();
    model(&mut params);
    let dir = std::env::temp_dir().join(format!("tapegrad-dist-{}", std::process::id()));
    let dir = std::path::PathBuf::from(world.broadcast_string(dir.display().to_string()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("model.safetensors");
    world.save_on_root(&params, &file).unwrap();
    world.barrier();
    assert!(
        file.exists(),
        "process 0 saved the file (shared file system here)"
    );
    let bad = dir.join("no-such-dir").join("model.safetensors");
    assert!(matches!(
        world.save_on_root(&params, &bad),
        Err(DistError::Save(_))
    ));
    world.barrier();
    world.on_root(|| std::fs::remove_dir_all(&dir).unwrap());
}
