//! A layered left-to-right layout for the page's graph: inputs on the left,
//! the output on the right, each node in a column one past its latest
//! input, and the nodes of a column ordered to keep edges short (the
//! barycenter heuristic of Sugiyama-style layouts).
//!
//! Boxes in one column share an x and sit one slot apart, so no two boxes
//! can overlap whatever the ordering; the ordering only decides how many
//! edges cross.

/// Where a node's box goes, in SVG pixels (top-left corner and size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Placed {
    pub(crate) x: f64,
    pub(crate) y: f64,
    pub(crate) w: f64,
    pub(crate) h: f64,
}

/// Height of a node's box and the gaps between boxes and columns.
pub(crate) const BOX_H: f64 = 62.0;
const ROW_GAP: f64 = 22.0;
const COLUMN_GAP: f64 = 70.0;
const MARGIN: f64 = 16.0;

/// Lays out nodes `0..n`, where `inputs[i]` lists node `i`'s inputs (all
/// below `i`, as on the tape) and `widths[i]` its box width. Returns each
/// box and the size of the whole picture.
pub(crate) fn layout(inputs: &[Vec<usize>], widths: &[f64]) -> (Vec<Placed>, (f64, f64)) {
    let n = inputs.len();
    let mut consumers = vec![Vec::new(); n];
    for (i, ins) in inputs.iter().enumerate() {
        for &j in ins {
            consumers[j].push(i);
        }
    }
    // A column one past the latest input; then each input-less node moves
    // right to sit just before its first consumer, near where it is used.
    let mut column = vec![0usize; n];
    for i in 0..n {
        column[i] = inputs[i].iter().map(|&j| column[j] + 1).max().unwrap_or(0);
    }
    for i in (0..n).rev() {
        if inputs[i].is_empty() {
            if let Some(c) = consumers[i].iter().map(|&k| column[k]).min() {
                column[i] = c - 1;
            }
        }
    }
    let columns = column.iter().max().map_or(0, |c| c + 1);
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (i, &c) in column.iter().enumerate() {
        order[c].push(i);
    }
    let mut row = vec![0.0f64; n];
    let place = |order: &[Vec<usize>], row: &mut [f64]| {
        for col in order {
            for (r, &i) in col.iter().enumerate() {
                row[i] = r as f64;
            }
        }
    };
    place(&order, &mut row);
    // Sweeps right (by inputs' rows) and left (by consumers' rows).
    for _ in 0..6 {
        for c in 1..columns {
            sort_by_mean(&mut order[c], inputs, &row);
            place(&order, &mut row);
        }
        for c in (0..columns.saturating_sub(1)).rev() {
            sort_by_mean(&mut order[c], &consumers, &row);
            place(&order, &mut row);
        }
    }
    let tallest = order.iter().map(Vec::len).max().unwrap_or(0) as f64;
    let slot = BOX_H + ROW_GAP;
    let mut placed = vec![
        Placed {
            x: 0.0,
            y: 0.0,
            w: 0.0,
            h: BOX_H
        };
        n
    ];
    let mut x = MARGIN;
    for col in &order {
        let w = col.iter().map(|&i| widths[i]).fold(0.0, f64::max);
        // Short columns are centred against the tallest.
        let top = MARGIN + (tallest - col.len() as f64) * slot / 2.0;
        for (r, &i) in col.iter().enumerate() {
            placed[i] = Placed {
                x: x + (w - widths[i]) / 2.0,
                y: top + r as f64 * slot,
                w: widths[i],
                h: BOX_H,
            };
        }
        x += w + COLUMN_GAP;
    }
    let size = (
        x - COLUMN_GAP + MARGIN,
        2.0 * MARGIN + tallest * slot - ROW_GAP,
    );
    (placed, size)
}

/// Orders a column by the mean row of each node's neighbours; nodes with
/// none keep their place relative to the others (a stable sort on their
/// current row).
fn sort_by_mean(col: &mut [usize], neighbours: &[Vec<usize>], row: &[f64]) {
    let key = |i: usize| {
        let ns = &neighbours[i];
        if ns.is_empty() {
            row[i]
        } else {
            ns.iter().map(|&j| row[j]).sum::<f64>() / ns.len() as f64
        }
    };
    col.sort_by(|&p, &q| key(p).total_cmp(&key(q)).then(row[p].total_cmp(&row[q])));
}

/// Whether any two boxes overlap.
#[cfg(test)]
pub(crate) fn any_overlap(placed: &[Placed]) -> bool {
    placed.iter().enumerate().any(|(i, p)| {
        placed[i + 1..]
            .iter()
            .any(|q| p.x < q.x + q.w && q.x < p.x + p.w && p.y < q.y + q.h && q.y < p.y + p.h)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Edge crossings between adjacent columns, counted pairwise.
    fn crossings(inputs: &[Vec<usize>], placed: &[Placed]) -> usize {
        let edges: Vec<(Placed, Placed)> = inputs
            .iter()
            .enumerate()
            .flat_map(|(i, ins)| ins.iter().map(move |&j| (placed[j], placed[i])))
            .collect();
        let mut n = 0;
        for (a, (p0, p1)) in edges.iter().enumerate() {
            for (q0, q1) in &edges[a + 1..] {
                let same_span = p0.x == q0.x && p1.x == q1.x;
                if same_span && (p0.y - q0.y) * (p1.y - q1.y) < 0.0 {
                    n += 1;
                }
            }
        }
        n
    }

    #[test]
    fn columns_follow_the_inputs_and_no_boxes_overlap() {
        // 0, 1 -> 2 -> 4 <- 3
        let inputs = vec![vec![], vec![], vec![0, 1], vec![], vec![2, 3]];
        let (placed, (w, h)) = layout(&inputs, &[100.0; 5]);
        assert!(placed[0].x < placed[2].x && placed[2].x < placed[4].x);
        // The leaf 3 sits in the column just before its consumer.
        assert_eq!(placed[3].x, placed[2].x);
        assert!(!any_overlap(&placed));
        assert!(placed.iter().all(|p| p.x + p.w <= w && p.y + p.h <= h));
    }

    #[test]
    fn ordering_removes_the_crossings_of_a_twisted_ladder() {
        // Inputs 0..4 recorded in an order that crosses every edge:
        // node 4 + k uses input 3 - k.
        let mut inputs: Vec<Vec<usize>> = vec![vec![]; 4];
        inputs.extend((0..4).map(|k| vec![3 - k]));
        let (placed, _) = layout(&inputs, &[80.0; 8]);
        assert_eq!(crossings(&inputs, &placed), 0);
        assert!(!any_overlap(&placed));
    }
}
