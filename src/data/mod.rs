//! Reading real data and feeding it to a model: IDX files (the MNIST
//! format, plain or gzip), numeric CSV tables, seeded train/test splits,
//! standardisation and shuffled mini-batches.
//!
//! ```
//! use tapegrad::data::{read_csv, train_test_split, MiniBatches, Standardizer};
//!
//! let table = read_csv(concat!(env!("CARGO_MANIFEST_DIR"), "/data/iris.csv"))?;
//! let (x, labels) = table.features_and_labels::<f32>("species")?;
//! let (train, test) = train_test_split(x.shape()[0], 0.2, 42);
//! let scaler = Standardizer::fit(&x.rows(&train));
//! let x_train = scaler.transform(&x.rows(&train));
//! let y_train: Vec<usize> = train.iter().map(|&i| labels[i]).collect();
//! for (xb, yb) in MiniBatches::new(&x_train, &y_train, 16, 7).epoch(0) {
//!     assert_eq!(xb.shape()[0], yb.len());
//! }
//! assert_eq!(test.len(), 30);
//! # Ok::<(), tapegrad::data::DataError>(())
//! ```

mod batches;
mod csv_table;
mod idx;
mod prep;
mod sharded;

pub use batches::{MiniBatches, Rows};
pub use csv_table::{read_csv, read_csv_with, CsvOptions, Table};
pub use idx::{read_idx, read_mnist, IdxArray};
pub use prep::{train_test_split, Standardizer};
pub use sharded::ShardedBatches;

use std::path::PathBuf;

/// What went wrong reading a data file. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file does not start with a valid IDX magic number.
    #[error("{path}: bad magic number {found:#010x}: {why}")]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The first four bytes, big-endian.
        found: u32,
        /// What was expected.
        why: String,
    },
    /// The file ends before the data its header announces.
    #[error("{path}: truncated: the header announces {expected} bytes of data but {found} follow")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes announced.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// A CSV cell that reads as NaN or an infinity (refused unless
    /// [`CsvOptions::allow_non_finite`] is set).
    #[error("{path}: row {row}, column `{column}`: `{value}` is not finite; clean the data, or read it with CsvOptions::allow_non_finite")]
    NonFinite {
        /// The file.
        path: PathBuf,
        /// The 1-based line number in the file.
        row: usize,
        /// The column's header.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// A CSV cell that is not a number.
    #[error("{path}: row {row}, column `{column}`: `{value}` is not a number")]
    NotNumeric {
        /// The file.
        path: PathBuf,
        /// The 1-based line number in the file.
        row: usize,
        /// The column's header.
        column: String,
        /// The cell's text.
        value: String,
    },
    /// A CSV row with the wrong number of cells, or another parse error.
    #[error("{path}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}
