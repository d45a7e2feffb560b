//! Shared body of the decompressor targets.

use std::cell::RefCell;

use depmod::decompress::{decompress, detect, Decoders, Error, Format};
use depmod::scan::ModuleData;

thread_local! {
    /// Decoders reused across inputs, as a worker reuses them across modules: what
    /// one input leaves behind (a failed stream, a full window) must not change how
    /// the next one decodes.
    static SHARED: RefCell<Decoders> = RefCell::new(Decoders::default());
}

/// Output cap while fuzzing: above any seed (real modules of at most 24 KiB), small
/// enough that a bad size hint costs little.
const LIMIT: usize = 1 << 20;

pub fn run(format: Format, data: &[u8]) {
    SHARED.with(|shared| run_with(&mut shared.borrow_mut(), format, data));
}

fn run_with(shared: &mut Decoders, format: Format, data: &[u8]) {
    let mut out = Vec::new();
    let result = shared.decompress(format, data, &mut out, LIMIT);
    let mut fresh = Vec::new();
    assert_eq!(
        decompress(format, data, &mut fresh, LIMIT),
        result,
        "reused vs fresh"
    );
    if result.is_ok() {
        assert_eq!(fresh, out, "reused vs fresh");
    }
    match result {
        Ok(()) => {
            assert!(out.len() <= LIMIT, "{} bytes over the limit", out.len());
            // The same input with a limit one byte short of the output must be refused
            // as too large, and with the exact limit must give the same bytes.
            if !out.is_empty() {
                let mut again = Vec::new();
                assert_eq!(
                    shared.decompress(format, data, &mut again, out.len() - 1),
                    Err(Error::TooLarge(format))
                );
                // It may have filled up to one byte past the limit before it stopped.
                assert!(again.len() <= out.len());
                again.clear();
                shared
                    .decompress(format, data, &mut again, out.len())
                    .expect("exact limit");
                assert_eq!(again, out);
            }
            // What a module load would do next.
            if detect(&out).is_some() {
                std::hint::black_box(ModuleData::from_image(&out));
            }
        }
        Err(
            Error::Unsupported(f) | Error::Corrupt(f) | Error::Truncated(f) | Error::TooLarge(f),
        ) => {
            assert_eq!(f, format);
            // A failed decode may leave up to one byte past the limit in the buffer.
            assert!(out.len() <= LIMIT + 1);
        }
    }
}
