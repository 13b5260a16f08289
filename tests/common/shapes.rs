//! proptest strategies for tensor shapes, shared by the test files.

use proptest::prelude::*;

/// Up to `max_nd` dimensions of length 1 to 4.
pub fn shape(max_nd: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 0..=max_nd)
}

/// Between `min_nd` and `max_nd` dimensions of length 1 to 4.
pub fn shape_at_least(min_nd: usize, max_nd: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, min_nd..=max_nd)
}

/// Two shapes that broadcast together: the second is a suffix of the first
/// with some dimensions set to 1; either may come first.
pub fn broadcast_pair() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (shape(3), any::<u64>()).prop_map(|(full, bits)| {
        let drop = (bits % (full.len() as u64 + 1)) as usize;
        let other: Vec<usize> = full[drop..]
            .iter()
            .enumerate()
            .map(|(i, &d)| if bits >> (8 + i) & 1 == 1 { 1 } else { d })
            .collect();
        if bits >> 7 & 1 == 1 {
            (full, other)
        } else {
            (other, full)
        }
    })
}
