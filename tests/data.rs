//! Data loading: the bundled files, malformed files, splits, scaling and
//! mini-batches.

use std::io::Write;
use std::path::PathBuf;
use tapegrad::data::{
    read_csv, read_csv_with, read_idx, read_mnist, train_test_split, CsvOptions, DataError,
    MiniBatches, Standardizer,
};
use tapegrad::Tensor;

fn bundled(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(name)
}

fn scratch(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tapegrad-data-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn bundled_mnist_reads_with_all_ten_classes() {
    let (x, y) = read_mnist::<f32>(
        bundled("mnist-10k-images-idx3-ubyte.gz"),
        bundled("mnist-10k-labels-idx1-ubyte.gz"),
    )
    .unwrap();
    assert_eq!(x.shape(), &[10_000, 784]);
    assert!(x.data().iter().all(|v| (0.0..=1.0).contains(v)));
    let mut counts = [0usize; 10];
    for &l in &y[..1000] {
        counts[l] += 1;
    }
    assert!(counts.iter().all(|&c| c > 50), "{counts:?}");
}

#[test]
fn gzip_and_plain_idx_read_the_same() {
    let gz = std::fs::read(bundled("mnist-10k-labels-idx1-ubyte.gz")).unwrap();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
    let p = scratch("labels.idx", &plain);
    assert_eq!(
        read_idx(&p).unwrap(),
        read_idx(bundled("mnist-10k-labels-idx1-ubyte.gz")).unwrap()
    );
}

#[test]
fn malformed_idx_files_are_typed_errors_naming_the_file() {
    let p = scratch("bad-magic.idx", &[0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 1]);
    let e = read_idx(&p).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadMagic {
                found: 0x504b_0304,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("bad-magic.idx"));
    let mut short = vec![0, 0, 8, 1, 0, 0, 0, 100];
    short.extend([1, 2, 3]);
    let e = read_idx(scratch("short.idx", &short)).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::Truncated {
                expected: 100,
                found: 3,
                ..
            }
        ),
        "{e}"
    );
    // A gzip file cut short is an I/O error, not a panic.
    let gz = std::fs::read(bundled("mnist-10k-labels-idx1-ubyte.gz")).unwrap();
    assert!(read_idx(scratch("cut.idx.gz", &gz[..gz.len() / 2])).is_err());
    assert!(matches!(
        read_idx(bundled("absent.idx")),
        Err(DataError::Io { .. })
    ));
}

#[test]
fn csv_rejects_nan_and_inf_cells_unless_asked_with_row_and_column() {
    for cell in ["NaN", "nan", "inf", "-inf", "Infinity"] {
        let text = format!("a,b\n1,2\n3,{cell}\n");
        let e = read_csv(scratch("nan.csv", text.as_bytes())).unwrap_err();
        assert!(
            matches!(&e, DataError::NonFinite { row: 3, column, value, .. } if column == "b" && value == cell),
            "{e}"
        );
        assert!(e.to_string().contains("allow_non_finite"), "{e}");
        let t = read_csv_with(
            scratch("nan.csv", text.as_bytes()),
            CsvOptions::default().allow_non_finite(true),
        )
        .unwrap();
        assert!(!t.data[3].is_finite());
    }
}

#[test]
fn csv_reads_and_rejects_non_numeric_cells_with_row_and_column() {
    let table = read_csv(bundled("diabetes.csv")).unwrap();
    assert_eq!((table.rows(), table.columns.len()), (442, 11));
    let (x, y) = table.features_and_target::<f64>("progression").unwrap();
    assert_eq!((x.shape(), y[0]), (&[442, 10][..], 151.0));
    assert_eq!(x.get(&[0, 0]), 59.0);

    let mut f = Vec::new();
    writeln!(f, "a,b,label").unwrap();
    writeln!(f, "1,2,0").unwrap();
    writeln!(f, "3,four,1").unwrap();
    let e = read_csv(scratch("bad.csv", &f)).unwrap_err();
    assert!(
        matches!(&e, DataError::NotNumeric { row: 3, column, value, .. } if column == "b" && value == "four"),
        "{e}"
    );
    assert!(
        e.to_string()
            .ends_with("bad.csv: row 3, column `b`: `four` is not a number"),
        "{e}"
    );
    let e = read_csv(scratch("ragged.csv", b"a,b\n1,2\n3\n")).unwrap_err();
    assert!(matches!(e, DataError::Malformed { .. }), "{e}");
    let t = read_csv(scratch("labels.csv", b"a,label\n1,0.5\n")).unwrap();
    assert!(t.features_and_labels::<f32>("label").is_err());
    assert!(t
        .features_and_labels::<f32>("nope")
        .unwrap_err()
        .to_string()
        .contains("no column `nope`"));
}

#[test]
fn splits_are_seeded_partitions() {
    let (tr, te) = train_test_split(100, 0.2, 5);
    assert_eq!((tr.len(), te.len()), (80, 20));
    let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(train_test_split(100, 0.2, 5), (tr.clone(), te));
    assert_ne!(train_test_split(100, 0.2, 6).0, tr);
}

#[test]
fn standardizer_gives_zero_mean_unit_variance_on_its_fit_set() {
    let x = Tensor::<f64>::from_fn([50, 3], |i| {
        (i[0] as f64) * (i[1] as f64 + 1.0) + 7.0 * (i[1] == 2) as u8 as f64
    });
    let s = Standardizer::fit(&x);
    let z = s.transform(&x);
    for j in 0..3 {
        let col: Vec<f64> = (0..50).map(|i| z.get(&[i, j])).collect();
        let mean = col.iter().sum::<f64>() / 50.0;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 50.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12);
    }
    let constant = Standardizer::fit(&Tensor::<f64>::ones([4, 1]));
    assert_eq!(
        constant.transform(&Tensor::ones([2, 1])).data(),
        &[0.0, 0.0]
    );
}

#[test]
fn mini_batches_cover_every_row_once_per_epoch_in_a_seeded_order() {
    let x = Tensor::<f32>::from_fn([10, 2], |i| (i[0] * 10 + i[1]) as f32);
    let y: Vec<usize> = (0..10).collect();
    let mb = MiniBatches::new(&x, &y, 4, 3);
    assert_eq!(mb.len(), 3);
    let epoch0: Vec<(Tensor<f32>, Vec<usize>)> = mb.epoch(0).collect();
    assert_eq!(
        epoch0.iter().map(|(_, y)| y.len()).collect::<Vec<_>>(),
        vec![4, 4, 2]
    );
    let mut seen: Vec<usize> = epoch0.iter().flat_map(|(_, y)| y.clone()).collect();
    for (xb, yb) in &epoch0 {
        for (r, &label) in yb.iter().enumerate() {
            assert_eq!(
                xb.get(&[r, 0]),
                (label * 10) as f32,
                "inputs and targets stay paired"
            );
        }
    }
    seen.sort();
    assert_eq!(seen, y);
    let order = |e| mb.epoch(e).flat_map(|(_, y)| y).collect::<Vec<_>>();
    assert_eq!(order(0), order(0));
    assert_ne!(order(0), order(1));
}
