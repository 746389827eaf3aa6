//! Just enough of the ISO BMFF box structure to find where a fragmented MP4 left open by a
//! crash stops being complete.
//!
//! A segment is `ftyp moov (moof mdat)* [mfra]`. Each fragment is written whole (moof, then
//! mdat) and flushed, so after a crash everything up to the last complete `mdat` that follows a
//! `moof` is playable; a torn box at the end is cut off.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// What a scan of a (possibly torn) fragmented MP4 found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Scan {
    /// Bytes from the start that form a playable file: header plus whole fragments.
    pub complete_len: u64,
    /// Whole `moof`+`mdat` fragments within `complete_len`.
    pub fragments: u32,
    /// `ftyp` and `moov` are present (without them nothing is playable).
    pub has_header: bool,
    /// The file's actual length.
    pub file_len: u64,
}

/// Scans the top-level boxes of `path`.
pub fn scan_file(path: &Path) -> io::Result<Scan> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    scan(&mut f, len)
}

/// Scans top-level boxes from a reader of `len` bytes.
pub fn scan<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Scan> {
    let mut out = Scan {
        file_len: len,
        ..Scan::default()
    };
    let mut pos = 0u64;
    let mut seen_ftyp = false;
    let mut seen_moov = false;
    let mut pending_moof = false;
    while pos + 8 <= len {
        r.seek(SeekFrom::Start(pos))?;
        let mut head = [0u8; 8];
        r.read_exact(&mut head)?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let kind = [head[4], head[5], head[6], head[7]];
        let size = match size32 {
            0 => len - pos, // box runs to the end of the file
            1 => {
                if pos + 16 > len {
                    break;
                }
                let mut large = [0u8; 8];
                r.read_exact(&mut large)?;
                u64::from_be_bytes(large)
            }
            s => s,
        };
        if size < 8 || pos + size > len {
            break; // torn or garbage: stop here
        }
        pos += size;
        match &kind {
            b"ftyp" => seen_ftyp = true,
            b"moov" => {
                seen_moov = true;
                if seen_ftyp {
                    out.has_header = true;
                    out.complete_len = pos;
                }
            }
            b"moof" => pending_moof = true,
            b"mdat" if pending_moof => {
                pending_moof = false;
                if out.has_header {
                    out.fragments += 1;
                    out.complete_len = pos;
                }
            }
            // mfra, free, sidx, styp, …: complete unless a fragment is half written.
            _ if !pending_moof && out.has_header => out.complete_len = pos,
            _ => {}
        }
    }
    if !seen_moov {
        out.has_header = false;
        out.complete_len = 0;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(kind: &[u8; 4], body: usize) -> Vec<u8> {
        let mut v = ((body + 8) as u32).to_be_bytes().to_vec();
        v.extend_from_slice(kind);
        v.extend(std::iter::repeat_n(0u8, body));
        v
    }

    fn file(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    fn run(bytes: &[u8]) -> Scan {
        scan(&mut Cursor::new(bytes), bytes.len() as u64).unwrap()
    }

    #[test]
    fn whole_file_is_complete() {
        let f = file(&[
            boxed(b"ftyp", 16),
            boxed(b"moov", 100),
            boxed(b"moof", 50),
            boxed(b"mdat", 1000),
            boxed(b"moof", 50),
            boxed(b"mdat", 1000),
            boxed(b"mfra", 20),
        ]);
        let s = run(&f);
        assert_eq!(s.complete_len, f.len() as u64);
        assert_eq!(s.fragments, 2);
        assert!(s.has_header);
    }

    #[test]
    fn torn_mdat_is_cut_back_to_the_last_whole_fragment() {
        let good = file(&[
            boxed(b"ftyp", 16),
            boxed(b"moov", 100),
            boxed(b"moof", 50),
            boxed(b"mdat", 1000),
        ]);
        let mut torn = good.clone();
        torn.extend(boxed(b"moof", 50));
        torn.extend(&boxed(b"mdat", 1000)[..300]);
        let s = run(&torn);
        assert_eq!(s.complete_len, good.len() as u64);
        assert_eq!(s.fragments, 1);
    }

    #[test]
    fn moof_without_its_mdat_does_not_count() {
        let good = file(&[boxed(b"ftyp", 16), boxed(b"moov", 100)]);
        let mut f = good.clone();
        f.extend(boxed(b"moof", 50));
        let s = run(&f);
        assert_eq!(s.complete_len, good.len() as u64);
        assert_eq!(s.fragments, 0);
        assert!(s.has_header);
    }

    #[test]
    fn no_header_means_nothing_playable() {
        let f = file(&[boxed(b"ftyp", 16), boxed(b"moof", 50), boxed(b"mdat", 10)]);
        assert_eq!(run(&f).complete_len, 0);
        assert!(!run(&f).has_header);
        assert_eq!(run(&[]).complete_len, 0);
        assert_eq!(run(&[0, 0, 0]).complete_len, 0);
    }

    #[test]
    fn large_size_boxes_are_followed() {
        let mut f = file(&[boxed(b"ftyp", 16), boxed(b"moov", 100), boxed(b"moof", 50)]);
        let mut mdat = 1u32.to_be_bytes().to_vec();
        mdat.extend_from_slice(b"mdat");
        mdat.extend_from_slice(&(16u64 + 10).to_be_bytes());
        mdat.extend([0u8; 10]);
        f.extend(&mdat);
        let s = run(&f);
        assert_eq!(s.fragments, 1);
        assert_eq!(s.complete_len, f.len() as u64);
    }
}
