//! The C allocator's settings for processes that run libtorch.
//!
//! libtorch allocates CPU tensors with the C allocator. glibc serves blocks above its mmap
//! threshold with fresh `mmap`s and returns the free top of its heap to the kernel past its
//! trim threshold, so an attack or training loop, which frees and reallocates tensors of
//! the same sizes at every model call, faults every page of them in again and again.
//! Measured side by side on 2 cores: a `hotflip-word` audit of 300 examples on the tiny BERT
//! of `bench/bert_hotflip.sh` took 345k–735k page faults (three runs), 83k with the settings
//! below, and about 10% less time for the same report; word-cnn and birnn training epochs
//! took 18–23% less. The cost is that the process keeps up to [`TRIM_THRESHOLD`] of freed
//! memory, bounded by its peak use.
//!
//! PyTorch's performance guide reaches the same end by preloading jemalloc or tcmalloc;
//! this needs nothing installed. `GAUNTLET_MALLOC=system` in the environment leaves the
//! allocator as it is (for a process that must give memory back, or to measure the gain).

/// Blocks up to this size come from the heap, where freed memory is reused. glibc's own
/// threshold starts at 128 KiB and rises only as mmapped blocks are freed; setting it also
/// fixes the trim threshold, which would otherwise follow it.
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free memory at the top of the heap is kept up to this size.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// The environment variable that opts out (`system`).
pub const OPT_OUT_VAR: &str = "GAUNTLET_MALLOC";

/// Applies [`MMAP_THRESHOLD`] and [`TRIM_THRESHOLD`] to the process's C allocator unless
/// [`OPT_OUT_VAR`] is `system`; call at the start of `main`. Returns whether the allocator
/// took them: `false` when opted out, and off glibc, where nothing changes.
pub fn keep_freed_memory() -> bool {
    if opted_out(std::env::var(OPT_OUT_VAR).ok().as_deref()) {
        return false;
    }
    set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)
}

fn opted_out(value: Option<&str>) -> bool {
    value == Some("system")
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_thresholds(mmap: usize, trim: usize) -> bool {
    let (Ok(mmap), Ok(trim)) = (i32::try_from(mmap), i32::try_from(trim)) else {
        return false;
    };
    // SAFETY: `mallopt` only changes glibc's tuning parameters, takes plain integers, and
    // is thread-safe (it locks the arenas); it never touches memory the caller owns.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, mmap) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, trim) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_thresholds(_mmap: usize, _trim: usize) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_takes_the_thresholds() {
        assert!(set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD));
    }

    #[test]
    fn only_system_opts_out() {
        assert!(opted_out(Some("system")));
        assert!(!opted_out(None));
        assert!(!opted_out(Some("")));
        assert!(!opted_out(Some("glibc")));
    }
}
