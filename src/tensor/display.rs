//! NumPy-style printing: nested brackets, aligned columns, eight significant
//! digits by default (or the precision given, as in `{:.3}`), and `...` in
//! place of the middle of large tensors.

use super::{strides, Element, Tensor};
use std::fmt;

/// Tensors with more elements than this are summarised.
const SUMMARY_THRESHOLD: usize = 1000;
/// Entries shown at each end of a summarised dimension.
const EDGE: usize = 3;

impl<T: Element> fmt::Display for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let summarise = self.numel() > SUMMARY_THRESHOLD;
        let data = self.data();
        let finite: Vec<f64> = data
            .iter()
            .filter_map(|v| v.to_f64())
            .filter(|v| v.is_finite())
            .collect();
        let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let min = finite
            .iter()
            .filter(|v| **v != 0.0)
            .fold(f64::INFINITY, |m, v| m.min(v.abs()));
        let sci = max >= 1e8 || (min.is_finite() && min < 1e-4);
        let prec = f.precision();
        let fmt_one = |v: T| -> String {
            let v = v.to_f64().unwrap_or(f64::NAN);
            if !v.is_finite() {
                return format!("{v}");
            }
            match (sci, prec) {
                (true, p) => format!("{:.*e}", p.unwrap_or(4), v),
                (false, Some(p)) => format!("{v:.p$}"),
                (false, None) => {
                    let s = format!("{v:.8}");
                    let s = s.trim_end_matches('0');
                    s.to_string()
                }
            }
        };
        if self.ndim() == 0 {
            return write!(f, "{}", fmt_one(data[0]));
        }
        // Align decimal points: pad integer parts on the left and fractions
        // on the right, as NumPy does.
        let raw: Vec<String> = data.iter().map(|&v| fmt_one(v)).collect();
        let split = |c: &String| c.find(['.', 'e']).unwrap_or(c.len());
        let int_w = raw.iter().map(split).max().unwrap_or(0);
        let frac_w = raw.iter().map(|c| c.len() - split(c)).max().unwrap_or(0);
        let cells: Vec<String> = raw
            .iter()
            .map(|c| {
                let (i, fr) = c.split_at(split(c));
                format!("{i:>int_w$}{fr:<frac_w$}")
            })
            .collect();
        let width = int_w + frac_w;
        let st = strides(self.shape());
        let mut out = String::new();
        write_dim(&mut out, self.shape(), &st, 0, 0, &cells, width, summarise);
        f.write_str(&out)
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tensor({self}, shape={:?})", self.shape())
    }
}

#[allow(clippy::too_many_arguments)]
fn write_dim(
    out: &mut String,
    shape: &[usize],
    st: &[usize],
    d: usize,
    offset: usize,
    cells: &[String],
    width: usize,
    summarise: bool,
) {
    let n = shape[d];
    let shown: Vec<Option<usize>> = if summarise && n > 2 * EDGE {
        (0..EDGE)
            .map(Some)
            .chain([None])
            .chain((n - EDGE..n).map(Some))
            .collect()
    } else {
        (0..n).map(Some).collect()
    };
    out.push('[');
    let last = d + 1 == shape.len();
    for (pos, i) in shown.iter().enumerate() {
        if pos > 0 {
            if last {
                out.push_str(", ");
            } else {
                out.push(',');
                // One newline per remaining dimension, NumPy's block spacing.
                for _ in 0..(shape.len() - d - 1) {
                    out.push('\n');
                }
                out.push_str(&" ".repeat(d + 1));
            }
        }
        match i {
            None => out.push_str("..."),
            Some(i) if last => out.push_str(&format!("{:>width$}", cells[offset + i * st[d]])),
            Some(i) => write_dim(
                out,
                shape,
                st,
                d + 1,
                offset + i * st[d],
                cells,
                width,
                summarise,
            ),
        }
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_numpy() {
        let t = Tensor::<f64>::from_vec(vec![1.0, 2.5, -3.0, 4.0], [2, 2]);
        assert_eq!(format!("{t}"), "[[ 1. ,  2.5],\n [-3. ,  4. ]]");
        assert_eq!(format!("{t:.2}"), "[[ 1.00,  2.50],\n [-3.00,  4.00]]");
        assert_eq!(format!("{}", Tensor::scalar(0.5f32)), "0.5");
        let big = Tensor::<f32>::zeros([2000]);
        assert_eq!(format!("{big}"), "[0., 0., 0., ..., 0., 0., 0.]");
    }
}
