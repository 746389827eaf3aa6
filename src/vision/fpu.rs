//! Subnormal floats off on the threads that run inference (x86_64: the FTZ and DAZ bits of
//! MXCSR; nothing on other architectures).
//!
//! Why: `fr_feature.onnx` holds 8,938 subnormal weights (of 1.19 M), and on Intel CPUs every
//! multiplication with a subnormal operand or result takes a micro-code assist of ~100+ cycles.
//! With the default MXCSR one face cost ~65 ms here (163 ms under load) in classproof and in
//! Python alike; with FTZ (results flush to zero) and DAZ (subnormal inputs read as zero) set on
//! the thread that calls `run`, about 21 ms, with the same embedding (cosine ≥ 0.99999 against
//! the golden, tests/it/vision.rs). ONNX Runtime's own `session.set_denormal_as_zero` sets
//! the flags on its intra-op pool threads and (measured with 1.31.1) on the thread that creates
//! the session, whose later children inherit MXCSR; it does not reach a thread that already
//! exists when the pipeline moves to it, which is how analysis workers get theirs. So both are
//! done: the session option (pool threads, `threads > 1`) and [`flush_subnormals`] before every
//! `run` on whichever thread calls it.
//!
//! MXCSR is per thread and [`crate::vision::Pipeline`] is `Send` (it moves to its analysis
//! worker), so setting it once at load is not enough: every inference entry point calls
//! [`flush_subnormals`], which reads MXCSR (a few cycles) and writes it only when a bit is
//! missing. The flags stay set on that thread afterwards; nothing the box computes in floats
//! needs subnormals (similarities, durations and scores are far from 1e-38).

/// MXCSR bit 15: results that would be subnormal are written as zero.
#[cfg(target_arch = "x86_64")]
const FTZ: u32 = 1 << 15;
/// MXCSR bit 6: subnormal operands are read as zero.
#[cfg(target_arch = "x86_64")]
const DAZ: u32 = 1 << 6;

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut v: u32 = 0;
    // SAFETY: `stmxcsr` stores the 32-bit MXCSR register into the 4 bytes `v` points to; SSE
    // is part of the x86_64 baseline.
    unsafe {
        std::arch::asm!("stmxcsr [{}]", in(reg) &mut v as *mut u32, options(nostack, preserves_flags));
    }
    v
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(v: u32) {
    // SAFETY: `ldmxcsr` loads MXCSR from 4 bytes; `v` is a value read from MXCSR with only the
    // FTZ and DAZ bits added (DAZ is supported by every x86_64 CPU), so no reserved bit is set
    // and no exception is unmasked.
    unsafe {
        std::arch::asm!("ldmxcsr [{}]", in(reg) &v as *const u32, options(nostack, preserves_flags, readonly));
    }
}

/// Sets FTZ and DAZ on the calling thread (x86_64; a no-op elsewhere). Cheap when already set.
pub fn flush_subnormals() {
    #[cfg(target_arch = "x86_64")]
    {
        let v = read_mxcsr();
        if v & (FTZ | DAZ) != FTZ | DAZ {
            write_mxcsr(v | FTZ | DAZ);
        }
    }
}

/// True when subnormals are flushed on the calling thread (always true off x86_64, where this
/// module does nothing).
pub fn subnormals_flushed() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read_mxcsr() & (FTZ | DAZ) == FTZ | DAZ
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_are_per_thread_and_flush_subnormals() {
        std::thread::spawn(|| {
            let tiny = std::hint::black_box(f32::MIN_POSITIVE);
            #[cfg(target_arch = "x86_64")]
            {
                assert!(
                    !subnormals_flushed(),
                    "a new thread starts with the default MXCSR"
                );
                assert!((tiny / 4.0) > 0.0, "default: a subnormal result");
            }
            flush_subnormals();
            assert!(subnormals_flushed());
            flush_subnormals();
            assert!(subnormals_flushed());
            #[cfg(target_arch = "x86_64")]
            {
                assert_eq!(std::hint::black_box(tiny) / 4.0, 0.0, "FTZ: flushed to zero");
                let sub = std::hint::black_box(f32::from_bits(1));
                assert_eq!(sub * 1e30, 0.0, "DAZ: a subnormal operand reads as zero");
            }
        })
        .join()
        .unwrap();
    }
}
