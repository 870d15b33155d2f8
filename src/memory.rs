//! Where this process's memory is: resident memory from `/proc` (Linux; 0 elsewhere), and the
//! parts jichu can name (RocksDB's block cache and memtables, the spatial index), for the
//! benchmark's report and the `/metrics` gauges operators watch.

/// A `Key: N kB` line of a /proc file, in bytes (0 when absent).
pub fn proc_kib(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(key))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Resident anonymous memory (the heap, RocksDB's allocations included).
pub fn resident_anonymous() -> u64 {
    proc_kib("/proc/self/status", "RssAnon:")
}

/// Resident file-backed memory (mapped index files, which the kernel may drop).
pub fn resident_file() -> u64 {
    proc_kib("/proc/self/status", "RssFile:")
}

/// Resident bytes of the files this process maps from under `dir` (summed from
/// `/proc/self/smaps`): for the spatial layers, the pages queries have touched.
pub fn resident_under(dir: &std::path::Path) -> u64 {
    let (Ok(dir), Ok(smaps)) = (dir.canonicalize(), std::fs::read_to_string("/proc/self/smaps")) else { return 0 };
    let (mut inside, mut total) = (false, 0);
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if !first.ends_with(':') {
            // A mapping's header: range, permissions, offset, device, inode, path.
            inside = line
                .splitn(6, char::is_whitespace)
                .nth(5)
                .is_some_and(|p| std::path::Path::new(p.trim()).starts_with(&dir));
        } else if inside && first == "Rss:" {
            total += line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).unwrap_or(0) * 1024;
        }
    }
    total
}

/// The process's peak resident memory so far (VmHWM).
pub fn peak_resident() -> u64 {
    proc_kib("/proc/self/status", "VmHWM:")
}
