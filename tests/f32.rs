//! The same graphs in f32 agree with f64 to f32 precision.

use tapegrad::{Tape, Tensor, Var};

fn model<'t, T: tapegrad::Element>(x: Var<'t, T>, w: Var<'t, T>, b: Var<'t, T>) -> Var<'t, T> {
    let h = (x.matmul(w) + b).tanh();
    let p = h.log_softmax(1);
    (p.exp() * p).sum() + h.sigmoid().sqrt().mean() + h.square().softplus().sum()
}

#[test]
fn f32_gradients_match_f64() {
    let x64 = Tensor::<f64>::rand_uniform([4, 3], -1.0, 1.0, 1);
    let w64 = Tensor::<f64>::rand_uniform([3, 5], -1.0, 1.0, 2);
    let b64 = Tensor::<f64>::rand_uniform([5], -1.0, 1.0, 3);
    let t64 = Tape::<f64>::new();
    let (x, w, b) = (
        t64.constant(x64.clone()),
        t64.var(w64.clone()),
        t64.var(b64.clone()),
    );
    let l64 = model(x, w, b);
    let g64 = l64.backward();

    let t32 = Tape::<f32>::new();
    let (x2, w2, b2) = (
        t32.constant(x64.cast::<f32>()),
        t32.var(w64.cast::<f32>()),
        t32.var(b64.cast::<f32>()),
    );
    let l32 = model(x2, w2, b2);
    let g32 = l32.backward();
    assert!((l32.item() as f64 - l64.item()).abs() < 1e-5 * l64.item().abs().max(1.0));
    for (a, e) in [(&g32[w2], &g64[w]), (&g32[b2], &g64[b])] {
        for (p, q) in a.data().iter().zip(e.data()) {
            assert!(
                (*p as f64 - q).abs() < 1e-5 * q.abs().max(1.0),
                "{p} vs {q}"
            );
        }
    }
    // Grad of grad works in f32 too.
    let s = t32.var(1.5f32);
    let d = (s * s * s).backward_recorded()[s];
    assert_eq!(d.backward()[s].item(), 9.0);
}
