//! Opening an extract: decoding to UTF-8 and reading CSV records with their line numbers.

use crate::error::{Error, Result};
use crate::spec::{Spec, TextEncoding};
use csv::ByteRecord;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts the bytes read from the file, for progress reporting.
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Where the physical lines of the decoded text start, as the CSV reader reads it: every line
/// break (`\n`, `\r\n` or a lone `\r`, inside quoted fields too) is noted by its offset, and a
/// record's line is one more than the breaks before its first byte. The csv crate's own line
/// count is one short on CRLF files; an editor counts lines this way. Breaks the reader has
/// passed are dropped, so memory is bounded by the reader's buffer.
#[derive(Debug, Default)]
struct LineBreaks {
    /// Offsets and lengths (1, or 2 for CRLF) of the breaks not yet passed by a query.
    pending: VecDeque<(u64, u8)>,
    /// Breaks before the last queried offset.
    passed: u64,
    /// Bytes seen so far.
    offset: u64,
    /// The previous chunk ended with `\r` (a following `\n` belongs to it).
    after_cr: bool,
}

impl LineBreaks {
    fn scan(&mut self, chunk: &[u8]) {
        for i in memchr::memchr2_iter(b'\n', b'\r', chunk) {
            let crlf_tail = chunk[i] == b'\n' && if i == 0 { self.after_cr } else { chunk[i - 1] == b'\r' };
            if crlf_tail {
                if let Some(last) = self.pending.back_mut() {
                    last.1 = 2;
                }
            } else {
                self.pending.push_back((self.offset + i as u64, 1));
            }
        }
        if let Some(&last) = chunk.last() {
            self.after_cr = last == b'\r';
        }
        self.offset += chunk.len() as u64;
    }

    /// The 1-based line of a record the CSV reader says starts at `offset` (records asked in
    /// order). The reader's position is where it began reading, before the blank lines it
    /// skips: a break right there is a blank line, and the record starts after it.
    fn line_at(&mut self, offset: u64) -> u64 {
        let mut at = offset;
        while let Some(&(b, len)) = self.pending.front()
            && b < offset
        {
            self.pending.pop_front();
            self.passed += 1;
            // The reader may stand on the `\n` of a CRLF it has passed.
            at = at.max(b + u64::from(len));
        }
        while let Some(&(b, len)) = self.pending.front()
            && b == at
        {
            self.pending.pop_front();
            self.passed += 1;
            at += u64::from(len);
        }
        self.passed + 1
    }
}

/// Notes line breaks as the decoded text goes by (see [`LineBreaks`]).
struct Lines<R> {
    inner: R,
    breaks: Arc<Mutex<LineBreaks>>,
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.breaks.lock().unwrap_or_else(|e| e.into_inner()).scan(&buf[..n]);
        Ok(n)
    }
}

/// One CSV record as read, before mapping. `line` is the 1-based physical line it starts on.
#[derive(Clone, Debug, Default)]
pub struct RawRow {
    pub line: u64,
    pub record: ByteRecord,
}

/// A streaming reader over one extract file. Memory stays bounded by the batch size whatever
/// the file size.
pub struct Source {
    path: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    headers: Vec<String>,
    bytes_read: Arc<AtomicU64>,
    size: u64,
    breaks: Arc<Mutex<LineBreaks>>,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source").field("path", &self.path).field("headers", &self.headers).finish()
    }
}

impl Source {
    /// Opens `path` with the spec's encoding and delimiter and reads its header row.
    pub fn open(path: &Path, spec: &Spec) -> Result<Source> {
        let file = File::open(path).map_err(|source| Error::Io { path: path.into(), source })?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        let bytes_read = Arc::new(AtomicU64::new(0));
        let file = std::io::BufReader::with_capacity(1 << 20, Counting { inner: file, count: bytes_read.clone() });
        let decoded: Box<dyn Read + Send> = match spec.encoding {
            // UTF-8 passes through undecoded (fast); a bad byte surfaces per row.
            TextEncoding::Utf8 => Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(encoding_rs::UTF_8))
                    .utf8_passthru(true)
                    .strip_bom(true)
                    .build(file),
            ),
            other => Box::new(
                encoding_rs_io::DecodeReaderBytesBuilder::new()
                    .encoding(Some(other.encoding()))
                    .bom_override(true)
                    .build(file),
            ),
        };
        let breaks = Arc::new(Mutex::new(LineBreaks::default()));
        let decoded: Box<dyn Read + Send> = Box::new(Lines { inner: decoded, breaks: breaks.clone() });
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(spec.delimiter_byte())
            .flexible(true)
            .has_headers(true)
            .buffer_capacity(1 << 20)
            .from_reader(decoded);
        let headers = reader
            .byte_headers()
            .map_err(|source| Error::Csv { path: path.into(), source })?
            .iter()
            .map(|h| crate::normalize::normalize_text(&String::from_utf8_lossy(h)).into_owned())
            .collect::<Vec<_>>();
        if headers.iter().all(|h| h.is_empty()) {
            return Err(Error::Header { path: path.into(), message: "the file has no header row".into() });
        }
        Ok(Source { path: path.into(), reader, headers, bytes_read, size, breaks })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes, and a counter of the bytes read so far (shared, for progress).
    pub fn progress(&self) -> (u64, Arc<AtomicU64>) {
        (self.size, self.bytes_read.clone())
    }

    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// Fills `out` with up to `max` rows (reusing its allocations). Returns false at the end.
    pub fn next_batch(&mut self, max: usize, out: &mut Vec<RawRow>) -> Result<bool> {
        out.truncate(max);
        let mut n = 0;
        while n < max {
            if out.len() <= n {
                out.push(RawRow::default());
            }
            let row = &mut out[n];
            let more = self
                .reader
                .read_byte_record(&mut row.record)
                .map_err(|source| Error::Csv { path: self.path.clone(), source })?;
            if !more {
                break;
            }
            let start = row.record.position().map_or(0, |p| p.byte());
            row.line = self.breaks.lock().unwrap_or_else(|e| e.into_inner()).line_at(start);
            n += 1;
        }
        out.truncate(n);
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line each record of `text` starts on, as [`Source`] reports it.
    fn lines_of(text: &str) -> Vec<u64> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lines.csv");
        std::fs::write(&path, text).unwrap();
        let spec = Spec::parse("registry = \"x\"\nsource = \"y\"\n[columns]\nid = \"a\"\n").unwrap();
        let mut source = Source::open(&path, &spec).unwrap();
        let mut rows = Vec::new();
        let mut out = Vec::new();
        while source.next_batch(2, &mut rows).unwrap() {
            out.extend(rows.iter().map(|r| r.line));
        }
        out
    }

    #[test]
    fn lines_are_physical_for_every_line_end() {
        for end in ["\n", "\r\n", "\r"] {
            let body = ["a,b", "1,x", "2,y", "3,z"].join(end);
            assert_eq!(lines_of(&body), [2, 3, 4], "{end:?} without a final line end");
            assert_eq!(lines_of(&format!("{body}{end}")), [2, 3, 4], "{end:?} with one");
            let quoted = ["a,b", "1,\"two", "lines\"", "2,y", "3,\"x", "", "z\""].join(end);
            assert_eq!(lines_of(&format!("{quoted}{end}")), [2, 4, 5], "{end:?} with quoted line breaks");
            let blank = ["a,b", "", "1,x", "", "", "2,y"].join(end);
            assert_eq!(lines_of(&blank), [3, 6], "{end:?} with blank lines");
        }
    }

    #[test]
    fn a_crlf_split_across_reads_is_one_break() {
        let mut b = LineBreaks::default();
        b.scan(b"a\r");
        b.scan(b"\nb\r");
        b.scan(b"c\n");
        assert_eq!(b.line_at(3), 2);
        assert_eq!(b.line_at(5), 3);
        assert_eq!(b.line_at(7), 4);
    }
}
