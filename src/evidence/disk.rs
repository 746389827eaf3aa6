//! How much room the data dir has: the file system's own numbers (statvfs), or, when
//! `[evidence] capacity` is set, that capacity minus what the data dir holds (a quota for a
//! box whose disk is shared, and how the tests fill a disk for real without privileges).

use std::io;
use std::path::Path;

/// The room of the data dir, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskView {
    /// The disk's size (or the configured capacity).
    pub capacity: u64,
    /// What can still be written.
    pub available: u64,
}

/// Measures the data dir's room.
pub fn measure(data_dir: &Path, capacity: Option<u64>) -> io::Result<DiskView> {
    let fs = statvfs(data_dir)?;
    Ok(match capacity {
        None => fs,
        Some(cap) => {
            let used = dir_bytes(data_dir)?;
            DiskView {
                capacity: cap,
                available: cap.saturating_sub(used).min(fs.available),
            }
        }
    })
}

/// The file system's size and the space available to this (unprivileged) user.
pub fn statvfs(path: &Path) -> io::Result<DiskView> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out-pointer for statvfs(3).
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 on some 32-bit ones).
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, bavail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    Ok(DiskView {
        capacity: blocks.saturating_mul(frsize),
        available: bavail.saturating_mul(frsize),
    })
}

/// Space taken by everything under `dir` (allocated blocks, as `du` counts; symlinks are not
/// followed).
pub fn dir_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total = total.saturating_add(meta.blocks().saturating_mul(512).max(meta.len()));
            }
        }
    }
    Ok(total)
}

/// Parses a size: a plain number of bytes, or a number with a unit: B, kB/KB, MB, GB, TB
/// (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024); a space before the unit is
/// allowed. "200MB", "1.5 GB", "512MiB".
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        _ => return None,
    };
    let v = num * mult as f64;
    (v.is_finite() && v >= 0.0 && v < u64::MAX as f64).then_some(v.round() as u64)
}

/// A size for messages: "1.5 GB".
pub fn show_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < UNITS.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200MB"), Some(200_000_000));
        assert_eq!(parse_size("1.5 GB"), Some(1_500_000_000));
        assert_eq!(parse_size("512MiB"), Some(512 << 20));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("12 parsecs"), None);
        assert_eq!(parse_size("-1MB"), None);
        assert_eq!(show_size(1_500_000_000), "1.5 GB");
        assert_eq!(show_size(999), "999 B");
    }

    #[test]
    fn capacity_counts_what_the_data_dir_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("video/a")).unwrap();
        std::fs::write(dir.path().join("video/a/x.mp4"), vec![1u8; 100_000]).unwrap();
        let v = measure(dir.path(), Some(1_000_000)).unwrap();
        assert_eq!(v.capacity, 1_000_000);
        assert!(v.available <= 900_000 && v.available > 800_000, "{v:?}");
        let real = measure(dir.path(), None).unwrap();
        assert!(real.capacity > 0 && real.available <= real.capacity);
    }
}
