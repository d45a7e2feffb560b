//! What `std::is_x86_feature_detected!` answers, for builds without `std`: read with
//! `cpuid` and, for the AVX register state the kernel must save, `xgetbv`. Added by
//! depmod (vendor/README.md); depmod's tests/cpu_features.rs checks it against `std`.

#[cfg(target_arch = "x86")]
use core::arch::x86 as arch;
#[cfg(target_arch = "x86_64")]
use core::arch::x86_64 as arch;
use core::sync::atomic::{AtomicU32, Ordering};

pub const SSE: u32 = 1 << 0;
pub const SSE41: u32 = 1 << 1;
pub const SSE42: u32 = 1 << 2;
pub const PCLMULQDQ: u32 = 1 << 3;
pub const AVX2: u32 = 1 << 4;
pub const BMI1: u32 = 1 << 5;
pub const BMI2: u32 = 1 << 6;
pub const AVX512F: u32 = 1 << 7;
/// Set once detection ran, so that a CPU with none of the features is not asked again.
const DETECTED: u32 = 1 << 31;

static FEATURES: AtomicU32 = AtomicU32::new(0);

/// Whether the CPU (and the kernel, for the AVX state) has every feature in `wanted`.
#[inline(always)]
pub fn has(wanted: u32) -> bool {
    let mut features = FEATURES.load(Ordering::Relaxed);
    if features == 0 {
        features = detect() | DETECTED;
        FEATURES.store(features, Ordering::Relaxed);
    }
    features & wanted == wanted
}

#[cold]
#[allow(unused_unsafe)]
fn detect() -> u32 {
    // SAFETY: `cpuid` exists on every x86_64 CPU and on every x86 CPU that
    // `has_cpuid` accepts; leaves above the highest one reported are not read.
    #[cfg(target_arch = "x86")]
    if !arch::has_cpuid() {
        return 0;
    }
    let highest = unsafe { arch::__cpuid(0) }.eax;
    if highest < 1 {
        return 0;
    }
    let leaf1 = unsafe { arch::__cpuid(1) };
    let mut features = 0;
    let bit = |word: u32, n: u32| word & (1 << n) != 0;
    if bit(leaf1.edx, 25) {
        features |= SSE;
    }
    if bit(leaf1.ecx, 19) {
        features |= SSE41;
    }
    if bit(leaf1.ecx, 20) {
        features |= SSE42;
    }
    if bit(leaf1.ecx, 1) {
        features |= PCLMULQDQ;
    }
    // AVX registers are usable only when the kernel saves their state: OSXSAVE set
    // and XCR0 holding the SSE and AVX state (and, for AVX-512, the opmask and
    // upper ZMM state).
    let xcr0 = if bit(leaf1.ecx, 27) {
        // SAFETY: OSXSAVE is set, so `xgetbv` is enabled.
        unsafe { xgetbv0() }
    } else {
        0
    };
    let os_avx = bit(leaf1.ecx, 28) && xcr0 & 0b110 == 0b110;
    let os_avx512 = os_avx && xcr0 & 0b1110_0000 == 0b1110_0000;
    if highest >= 7 {
        let leaf7 = unsafe { arch::__cpuid_count(7, 0) };
        if bit(leaf7.ebx, 3) {
            features |= BMI1;
        }
        if bit(leaf7.ebx, 8) {
            features |= BMI2;
        }
        if os_avx && bit(leaf7.ebx, 5) {
            features |= AVX2;
        }
        if os_avx512 && bit(leaf7.ebx, 16) {
            features |= AVX512F;
        }
    }
    features
}

#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    // SAFETY: the caller checked OSXSAVE.
    unsafe { arch::_xgetbv(0) }
}
