//! gzip through `zlib-rs` (pure Rust). kbuild writes single-member files with the
//! uncompressed size (mod 2³²) in the trailer, which sizes the output in one go.

use alloc::vec::Vec;

use super::{Error, Format};

const F: Format = Format::Gzip;

pub fn decode(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Error> {
    if input.len() < 18 {
        return Err(Error::Truncated(F));
    }
    let n = input.len();
    let isize =
        u32::from_le_bytes([input[n - 4], input[n - 3], input[n - 2], input[n - 1]]) as usize;
    // The trailer is a hint: it is only the size mod 2^32, and may be corrupt. Try it
    // (plus a page of slack to see whether the stream really ends there), then grow.
    let mut size = isize.saturating_add(4096).min(limit.saturating_add(1));
    loop {
        out.clear();
        out.resize(size, 0);
        let config = zlib_rs::InflateConfig {
            window_bits: 16 + 15,
        };
        let (written, rc) = zlib_rs::decompress_slice(out, input, config);
        let len = written.len();
        match rc {
            zlib_rs::ReturnCode::Ok => {
                if len > limit {
                    return Err(Error::TooLarge(F));
                }
                out.truncate(len);
                return Ok(());
            }
            zlib_rs::ReturnCode::BufError if len == size => {
                if size > limit {
                    return Err(Error::TooLarge(F));
                }
                size = size.saturating_mul(2).min(limit.saturating_add(1));
            }
            zlib_rs::ReturnCode::BufError => return Err(Error::Truncated(F)),
            _ => return Err(Error::Corrupt(F)),
        }
    }
}
