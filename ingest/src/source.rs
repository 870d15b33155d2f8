//! Opening an extract: decoding to UTF-8 and reading CSV records with their line numbers.

use crate::error::{Error, Result};
use crate::spec::{Spec, TextEncoding};
use csv::ByteRecord;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
        Ok(Source { path: path.into(), reader, headers, bytes_read, size })
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
            row.line = row.record.position().map_or(0, |p| p.line());
            n += 1;
        }
        out.truncate(n);
        Ok(n > 0)
    }
}
