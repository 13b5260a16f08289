//! Running code with subnormal numbers flushed to zero, as XLA's CPU
//! backend (and so JAX) does by default.
//!
//! Long chains of multiplications by factors below 1 (the backward pass
//! of a deep scalar chain) can leave every adjoint stuck at the smallest
//! subnormal, 4.9e-324 (it times 0.55 rounds back to itself), and each
//! operation on a subnormal costs the CPU a microcode assist of a hundred
//! cycles or more. IEEE arithmetic is tapegrad's default; this is the
//! opt-in.

/// Runs `f` with subnormal results flushed to zero and subnormal inputs
/// read as zero (the x86 FTZ and DAZ modes) on the calling thread, and
/// restores the previous mode afterwards, also if `f` panics. Every
/// number that would have been below 2.2e-308 in magnitude (f64; 1.2e-38
/// for f32) is zero instead; results are otherwise unchanged. Work that
/// runs on other threads (the second core of large matrix products) keeps
/// its own mode. On other architectures `f` runs unchanged.
///
/// ```
/// let tiny = std::hint::black_box(1e-310f64);
/// assert!(tiny * 0.5 > 0.0); // a subnormal
/// assert_eq!(tapegrad::flush_subnormals(|| std::hint::black_box(tiny) * 0.5), 0.0);
/// assert!(tiny * 0.5 > 0.0); // the mode is restored
/// ```
pub fn flush_subnormals<R>(f: impl FnOnce() -> R) -> R {
    let _mode = Flushed::set();
    f()
}

/// Restores the saved control word when dropped.
struct Flushed {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl Flushed {
    fn set() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = mxcsr();
            set_mxcsr(saved | FTZ_DAZ);
            Flushed { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Flushed {}
    }
}

impl Drop for Flushed {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        set_mxcsr(self.saved);
    }
}

#[cfg(target_arch = "x86_64")]
fn mxcsr() -> u32 {
    let mut word = 0u32;
    // SAFETY: stmxcsr stores the 32-bit SSE control and status register
    // (SSE is part of the x86_64 baseline) into `word`, which is valid.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut word, options(nostack, preserves_flags));
    }
    word
}

#[cfg(target_arch = "x86_64")]
fn set_mxcsr(word: u32) {
    // SAFETY: ldmxcsr loads the control register from `word`, a value read
    // from it with only the FTZ and DAZ bits changed (valid settings).
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &word, options(nostack, readonly, preserves_flags));
    }
}
