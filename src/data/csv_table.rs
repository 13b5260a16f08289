//! Numeric CSV tables with a header row.

use super::DataError;
use crate::tensor::{Element, Tensor};
use std::path::{Path, PathBuf};

/// A numeric table: named columns, rows of `f64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Where it was read from.
    pub path: PathBuf,
    /// Column names from the header.
    pub columns: Vec<String>,
    /// The cells, row-major.
    pub data: Vec<f64>,
}

/// How [`read_csv_with`] reads a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CsvOptions {
    allow_non_finite: bool,
}

impl CsvOptions {
    /// Accepts cells such as `NaN`, `inf` and `-inf` (refused by default:
    /// one of them in a batch makes every weight NaN after a step).
    pub fn allow_non_finite(mut self, allow: bool) -> Self {
        self.allow_non_finite = allow;
        self
    }
}

/// Reads a CSV file whose first row names the columns and whose other
/// cells are all finite numbers.
///
/// # Errors
/// [`DataError::NotNumeric`] or [`DataError::NonFinite`] naming the file,
/// row and column of a bad cell; [`DataError::Malformed`] for a broken
/// file (rows of different lengths).
pub fn read_csv(path: impl AsRef<Path>) -> Result<Table, DataError> {
    read_csv_with(path, CsvOptions::default())
}

/// [`read_csv`] with options.
///
/// ```
/// use tapegrad::data::{read_csv, read_csv_with, CsvOptions, DataError};
/// let path = std::env::temp_dir().join(format!("tapegrad-doc-{}.csv", std::process::id()));
/// std::fs::write(&path, "a,b\n1,NaN\n").unwrap();
/// assert!(matches!(read_csv(&path), Err(DataError::NonFinite { row: 2, .. })));
/// let t = read_csv_with(&path, CsvOptions::default().allow_non_finite(true)).unwrap();
/// assert!(t.data[1].is_nan());
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn read_csv_with(path: impl AsRef<Path>, options: CsvOptions) -> Result<Table, DataError> {
    let path = path.as_ref();
    let p = || path.to_path_buf();
    let file = std::fs::File::open(path).map_err(|source| DataError::Io { path: p(), source })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(file);
    let malformed = |e: csv::Error| DataError::Malformed {
        path: p(),
        message: e.to_string(),
    };
    let columns: Vec<String> = reader
        .headers()
        .map_err(malformed)?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let mut data = Vec::new();
    for record in reader.records() {
        let record = record.map_err(malformed)?;
        let line = record.position().map_or(0, |pos| pos.line() as usize);
        for (cell, column) in record.iter().zip(&columns) {
            let v: f64 = cell.trim().parse().map_err(|_| DataError::NotNumeric {
                path: p(),
                row: line,
                column: column.clone(),
                value: cell.to_string(),
            })?;
            if !v.is_finite() && !options.allow_non_finite {
                return Err(DataError::NonFinite {
                    path: p(),
                    row: line,
                    column: column.clone(),
                    value: cell.to_string(),
                });
            }
            data.push(v);
        }
    }
    Ok(Table {
        path: p(),
        columns,
        data,
    })
}

impl Table {
    /// Number of data rows.
    pub fn rows(&self) -> usize {
        self.data.len() / self.columns.len().max(1)
    }

    fn column_index(&self, name: &str) -> Result<usize, DataError> {
        self.columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| DataError::Malformed {
                path: self.path.clone(),
                message: format!("no column `{name}` (columns: {})", self.columns.join(", ")),
            })
    }

    /// The columns other than `target` as an `(rows, columns - 1)` tensor,
    /// and the `target` column.
    pub fn features_and_target<T: Element>(
        &self,
        target: &str,
    ) -> Result<(Tensor<T>, Vec<f64>), DataError> {
        let t = self.column_index(target)?;
        let c = self.columns.len();
        let x: Vec<T> = self
            .data
            .chunks_exact(c)
            .flat_map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|&(j, _)| j != t)
                    .map(|(_, &v)| T::lit(v))
            })
            .collect();
        let y = self.data.chunks_exact(c).map(|row| row[t]).collect();
        Ok((Tensor::from_vec(x, [self.rows(), c - 1]), y))
    }

    /// Like [`Table::features_and_target`], with the target read as class
    /// labels (whole numbers from 0).
    pub fn features_and_labels<T: Element>(
        &self,
        target: &str,
    ) -> Result<(Tensor<T>, Vec<usize>), DataError> {
        let (x, y) = self.features_and_target(target)?;
        let labels = y
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if v >= 0.0 && v.fract() == 0.0 {
                    Ok(v as usize)
                } else {
                    Err(DataError::Malformed {
                        path: self.path.clone(),
                        message: format!(
                            "data row {}: label `{v}` in column `{target}` is not a class number",
                            i + 1
                        ),
                    })
                }
            })
            .collect::<Result<_, _>>()?;
        Ok((x, labels))
    }
}
