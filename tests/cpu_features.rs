//! The run-time CPU feature detection that the vendored zlib-rs uses when built
//! without `std` (the static dist binaries pick their inflate, CRC-32 and Adler-32
//! paths with it) must answer what `std::is_x86_feature_detected!` answers: a
//! feature it misses costs speed, a feature it invents crashes on `SIGILL`.
#![cfg(any(target_arch = "x86_64", target_arch = "x86"))]

#[allow(dead_code)]
#[path = "../vendor/zlib-rs/src/cpu_features/x86_detect.rs"]
mod x86_detect;

use x86_detect::*;

#[test]
fn detection_agrees_with_std() {
    let cases = [
        ("sse", SSE, std::is_x86_feature_detected!("sse")),
        ("sse4.1", SSE41, std::is_x86_feature_detected!("sse4.1")),
        ("sse4.2", SSE42, std::is_x86_feature_detected!("sse4.2")),
        (
            "pclmulqdq",
            PCLMULQDQ,
            std::is_x86_feature_detected!("pclmulqdq"),
        ),
        ("avx2", AVX2, std::is_x86_feature_detected!("avx2")),
        ("bmi1", BMI1, std::is_x86_feature_detected!("bmi1")),
        ("bmi2", BMI2, std::is_x86_feature_detected!("bmi2")),
        ("avx512f", AVX512F, std::is_x86_feature_detected!("avx512f")),
    ];
    for (name, bit, from_std) in cases {
        assert_eq!(has(bit), from_std, "{name}: ours vs std");
    }
    // Asked together, as zlib-rs asks for its AVX2 paths.
    let all = std::is_x86_feature_detected!("avx2")
        && std::is_x86_feature_detected!("bmi1")
        && std::is_x86_feature_detected!("bmi2");
    assert_eq!(has(AVX2 | BMI1 | BMI2), all);
    // The answer is kept: asking again gives the same.
    assert_eq!(has(AVX2), std::is_x86_feature_detected!("avx2"));
}
