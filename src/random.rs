//! Randomness from the kernel: lease tokens, enqueue tokens and the jitter of backoffs and
//! reconnect delays. A leaf: it imports nothing of the crate.

/// 128 random bits as 32 hex characters, from the kernel's CSPRNG.
pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    fill_random(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fills `buf` from `getrandom(2)`, or from `/dev/urandom` where that call is missing or fails
/// for another reason than a signal. Tokens must not be guessable, so with neither source there
/// is no fallback: the call panics (TM_PANIC through the C ABI) instead of spinning.
fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        // SAFETY: the pointer and length describe the unfilled tail of `buf`.
        let n =
            unsafe { libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0) };
        if n > 0 {
            filled += n as usize;
            continue;
        }
        if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        fill_from_device(&mut buf[filled..], "/dev/urandom")
            .expect("the kernel's random source (getrandom, /dev/urandom) is unavailable");
        return;
    }
}

/// The fallback source: a random device file.
fn fill_from_device(buf: &mut [u8], device: &str) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open(device)?.read_exact(buf)
}

/// A uniformly random number in [0, 1).
pub(crate) fn random_unit() -> f64 {
    let hex = random_hex();
    let n = u64::from_str_radix(&hex[..13], 16).unwrap_or(0);
    n as f64 / (1u64 << 52) as f64
}

#[cfg(test)]
mod tests {
    use super::{fill_from_device, random_hex};

    #[test]
    fn tokens_are_random_and_the_fallback_source_works() {
        let (a, b) = (random_hex(), random_hex());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let mut buf = [0u8; 64];
        fill_from_device(&mut buf, "/dev/urandom").unwrap();
        assert!(buf.iter().any(|b| *b != 0));
        // Without the device there is an error to report, not a loop.
        assert!(fill_from_device(&mut buf, "/nonexistent/random").is_err());
    }
}
