//! Where this process's memory is: resident memory from `/proc` (Linux; 0 elsewhere), and the
//! parts jichu can name (RocksDB's block cache and memtables, the spatial index), for the
//! benchmark's report and the `/metrics` gauges operators watch.

/// A `Key: N kB` line of a /proc file, in bytes (0 when absent).
pub fn proc_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file).map_or(0, |s| kib_in(&s, key))
}

/// A `Key: N kB` line of a /proc file's text, in bytes (0 when absent).
fn kib_in(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The resident set and its two main parts, from one read of `/proc/self/status`, so that
/// they are of one instant (read one at a time around a slow walk of `smaps`, the parts of
/// a peak came from a later moment than its total).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resident {
    pub total: u64,
    /// The heap, RocksDB's allocations included.
    pub anonymous: u64,
    /// Mapped files (index files), which the kernel may drop.
    pub file: u64,
}

pub fn resident() -> Resident {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    Resident {
        total: kib_in(&status, "VmRSS:"),
        anonymous: kib_in(&status, "RssAnon:"),
        file: kib_in(&status, "RssFile:"),
    }
}

/// Resident bytes of the files this process maps from under `dir` (summed from
/// `/proc/self/smaps`): for the spatial layers, the pages queries have touched.
pub fn resident_under(dir: &std::path::Path) -> u64 {
    resident_files(&[dir]).under[0]
}

/// Resident bytes of mapped files by where they lie ([`resident_files`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileResidency {
    /// Under each of the folders asked about, in their order.
    pub under: Vec<u64>,
    /// Files under those folders deleted since they were mapped: a superseded full-text
    /// segment or spatial layer file that some view still holds.
    pub deleted: u64,
}

/// Resident bytes of the files this process maps, summed from `/proc/self/smaps` by folder.
pub fn resident_files(dirs: &[&std::path::Path]) -> FileResidency {
    let dirs: Vec<_> = dirs.iter().map(|d| d.canonicalize().ok()).collect();
    let mut out = FileResidency { under: vec![0; dirs.len()], ..FileResidency::default() };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return out };
    // Where the current mapping's Rss goes: a folder's index, deleted, or nowhere (anonymous
    // memory and other files).
    enum To {
        Under(usize),
        Deleted,
        Nowhere,
    }
    let mut to = To::Nowhere;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if !first.ends_with(':') {
            // A mapping's header: range, permissions, offset, device, inode, path.
            let path = line.splitn(6, char::is_whitespace).nth(5).map_or("", str::trim);
            let (path, deleted) = match path.strip_suffix(" (deleted)") {
                Some(p) => (p, true),
                None => (path, false),
            };
            let p = std::path::Path::new(path);
            to = match dirs.iter().position(|d| d.as_ref().is_some_and(|d| p.starts_with(d))) {
                Some(_) if deleted => To::Deleted,
                Some(i) => To::Under(i),
                None => To::Nowhere,
            };
        } else if first == "Rss:" {
            let bytes = line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) * 1024;
            match to {
                To::Under(i) => out.under[i] += bytes,
                To::Deleted => out.deleted += bytes,
                To::Nowhere => {}
            }
        }
    }
    out
}

/// Whether the kernel may back this process's heap with transparent huge pages (2 MiB).
///
/// mimalloc asks for them on its arenas. On this project's machines (Firecracker VMs), with
/// them the kernel cleared many times a full-text rebuild's peak memory, a quarter of its CPU;
/// a process that runs one load and exits lives too short to win it back in fewer TLB
/// misses. So `jichu load` and `jichu reindex` turn them off, and a long-lived server keeps
/// the kernel's setting (measured in benches/results/README.md). Applies to pages faulted in
/// from now on, whatever `madvise` asked.
pub fn set_transparent_huge_pages(allow: bool) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(!allow)?;
    Ok(())
}

/// Whether transparent huge pages are off for this process (always false off Linux).
pub fn transparent_huge_pages_disabled() -> bool {
    #[cfg(target_os = "linux")]
    return rustix::thread::transparent_huge_pages_are_disabled().unwrap_or(false);
    #[cfg(not(target_os = "linux"))]
    false
}

/// Page faults this process has taken that read from the disk (`majflt` of
/// `/proc/self/stat`; 0 elsewhere): a query that faults waits for a read.
pub fn major_faults() -> u64 {
    majflt(&std::fs::read_to_string("/proc/self/stat").unwrap_or_default()).unwrap_or(0)
}

/// The `majflt` field of a `/proc/PID/stat` line. The fields after the command's last closing
/// parenthesis (a command may hold spaces and parentheses) start at the third, the state;
/// `majflt` is the twelfth.
fn majflt(stat: &str) -> Option<u64> {
    stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(9)?.parse().ok())
}

/// The process's peak resident memory so far (VmHWM).
pub fn peak_resident() -> u64 {
    proc_kib("/proc/self/status", "VmHWM:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_faults_are_read_after_the_command_whatever_it_holds() {
        let line = "4242 (jichu (x) y) S 1 4242 4242 0 -1 4194560 1795 0 37 0 12 3 0 0 20 0 9 0";
        assert_eq!(majflt(line), Some(37));
        assert_eq!(majflt("garbage"), None);
        assert!(majflt(&std::fs::read_to_string("/proc/self/stat").unwrap()).is_some());
    }

    #[test]
    fn the_resident_parts_are_of_one_read() {
        let r = resident();
        if cfg!(target_os = "linux") {
            // VmRSS is RssAnon + RssFile + RssShmem of the same moment.
            assert!(r.anonymous > 0 && r.file > 0, "{r:?}");
            assert!(r.total >= r.anonymous + r.file, "{r:?}");
        }
        assert_eq!(kib_in("VmRSS:\t  1234 kB\nRssAnon:\t 1000 kB\n", "RssAnon:"), 1000 * 1024);
        assert_eq!(kib_in("VmRSS: 1 kB\n", "RssFile:"), 0);
    }

    #[test]
    fn huge_pages_are_turned_off_and_on_again() {
        set_transparent_huge_pages(false).unwrap();
        assert_eq!(transparent_huge_pages_disabled(), cfg!(target_os = "linux"));
        set_transparent_huge_pages(true).unwrap();
        assert!(!transparent_huge_pages_disabled());
    }
}
