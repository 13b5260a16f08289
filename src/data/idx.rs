//! The IDX format of the MNIST files: a magic number (two zero bytes, a
//! type code, the number of dimensions), one big-endian u32 per dimension,
//! then the data. Only unsigned bytes (type 0x08) are read, which is what
//! MNIST uses. Gzip-compressed files are recognised by their first bytes.

use super::DataError;
use crate::tensor::{Element, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct IdxArray {
    /// The dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// The bytes, row-major.
    pub data: Vec<u8>,
}

fn read_all(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let raw = std::fs::read(path).map_err(io)?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(io)?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Reads an IDX file (plain or gzip).
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray, DataError> {
    let path = path.as_ref();
    let bytes = read_all(path)?;
    parse(path, &bytes)
}

fn parse(path: &Path, bytes: &[u8]) -> Result<IdxArray, DataError> {
    let p = || path.to_path_buf();
    let truncated = |expected: usize| DataError::Truncated {
        path: p(),
        expected,
        found: bytes.len(),
    };
    let word = |i: usize| -> Option<u32> {
        bytes
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes(b.try_into().unwrap()))
    };
    let magic = word(0).ok_or_else(|| truncated(4))?;
    let (zeros, code, ndim) = (magic >> 16, (magic >> 8) & 0xff, (magic & 0xff) as usize);
    if zeros != 0 || ndim == 0 {
        return Err(DataError::BadMagic {
            path: p(),
            found: magic,
            why: "not an IDX file (expected 0x0000TTNN)".into(),
        });
    }
    if code != 0x08 {
        return Err(DataError::BadMagic {
            path: p(),
            found: magic,
            why: format!("element type {code:#04x} is not supported (only unsigned bytes, 0x08)"),
        });
    }
    let header = 4 * (ndim + 1);
    let dims: Vec<usize> = (1..=ndim)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<Option<_>>()
        .ok_or_else(|| truncated(header))?;
    let n: usize = dims.iter().product();
    let data = &bytes[header..];
    if data.len() < n {
        return Err(DataError::Truncated {
            path: p(),
            expected: n,
            found: data.len(),
        });
    }
    Ok(IdxArray {
        dims,
        data: data[..n].to_vec(),
    })
}

/// Reads MNIST images and labels: images as an `(n, rows·cols)` tensor
/// scaled to `[0, 1]`, labels as class numbers.
///
/// ```
/// use tapegrad::data::read_mnist;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/");
/// let (x, y) = read_mnist::<f32>(
///     format!("{dir}mnist-10k-images-idx3-ubyte.gz"),
///     format!("{dir}mnist-10k-labels-idx1-ubyte.gz"),
/// )?;
/// assert_eq!((x.shape(), y.len()), (&[10_000, 784][..], 10_000));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn read_mnist<T: Element>(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
) -> Result<(Tensor<T>, Vec<usize>), DataError> {
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let img = read_idx(ip)?;
    let lab = read_idx(lp)?;
    let shape_err = |path: &Path, message: String| DataError::Malformed {
        path: PathBuf::from(path),
        message,
    };
    if img.dims.len() != 3 {
        return Err(shape_err(
            ip,
            format!(
                "expected 3 dimensions (count, rows, cols), found {:?}",
                img.dims
            ),
        ));
    }
    if lab.dims.len() != 1 || lab.dims[0] != img.dims[0] {
        return Err(shape_err(
            lp,
            format!(
                "expected {} labels, found dimensions {:?}",
                img.dims[0], lab.dims
            ),
        ));
    }
    if let Some(bad) = lab.data.iter().find(|&&l| l > 9) {
        return Err(shape_err(lp, format!("label {bad} is not a digit 0..9")));
    }
    let (n, d) = (img.dims[0], img.dims[1] * img.dims[2]);
    let scale = T::lit(1.0 / 255.0);
    let x = Tensor::from_vec(
        img.data.iter().map(|&b| T::lit(b as f64) * scale).collect(),
        [n, d],
    );
    Ok((x, lab.data.iter().map(|&l| l as usize).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(magic: u32, dims: &[u32]) -> Vec<u8> {
        std::iter::once(magic)
            .chain(dims.iter().copied())
            .flat_map(|w| w.to_be_bytes())
            .collect()
    }

    #[test]
    fn parses_and_rejects() {
        let p = Path::new("x.idx");
        let mut ok = header(0x0000_0801, &[3]);
        ok.extend([7, 8, 9]);
        assert_eq!(
            parse(p, &ok).unwrap(),
            IdxArray {
                dims: vec![3],
                data: vec![7, 8, 9]
            }
        );
        let e = parse(p, &ok[..9]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "x.idx: truncated: the header announces 3 bytes of data but 1 follow"
        );
        let e = parse(p, &header(0x1234_0801, &[3])).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("x.idx: bad magic number 0x12340801"),
            "{e}"
        );
        let e = parse(p, &header(0x0000_0d01, &[3])).unwrap_err();
        assert!(
            e.to_string().contains("element type 0x0d is not supported"),
            "{e}"
        );
    }
}
