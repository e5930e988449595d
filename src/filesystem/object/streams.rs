//! The streams of an [`ObjectStore`](super::ObjectStore): a listing read a page at a time,
//! a download read ahead in parts, an upload written in parts.

use std::fmt;
use std::io;
use std::pin::Pin;

use bytes::Buf;
use futures::StreamExt;
use opendal::Buffer;

use super::files::{dir_stat, file_stat, secs};
use super::{io_error, ObjectStore, OpenUpload};
use crate::filesystem::{DirEntry, DirStream, FileReader, FileWriter, StatMode};

/// A listing being read a page at a time.
pub(super) struct ObjectDir {
    pub(super) store: ObjectStore,
    pub(super) lister: Pin<Box<opendal::Lister>>,
    /// The listed prefix (`a/b/`), whose own marker is not an entry.
    pub(super) dir: String,
}

impl fmt::Debug for ObjectDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectDir").field("dir", &self.dir).finish()
    }
}

impl DirStream for ObjectDir {
    fn next_batch(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        loop {
            let lister = &mut self.lister;
            let entries = self
                .store
                .block_on(async move {
                    let mut out = Vec::new();
                    while out.len() < max.max(1) {
                        match lister.next().await {
                            Some(e) => out.push(e?),
                            None => break,
                        }
                    }
                    Ok(out)
                })
                .map_err(io_error)?;
            if entries.is_empty() {
                return Ok(Vec::new());
            }
            let batch = self.entries(entries, mode);
            // A page of only the directory's own marker is not the end: read on.
            if !batch.is_empty() {
                return Ok(batch);
            }
        }
    }
}

impl ObjectDir {
    /// The names under the listed prefix, with their metadata as `mode` asks.
    fn entries(&self, entries: Vec<opendal::Entry>, mode: StatMode) -> Vec<DirEntry> {
        let dir = self.dir.as_str();
        let mut batch = Vec::with_capacity(entries.len());
        for e in entries {
            let path = e.path().trim_start_matches('/');
            let name = path.strip_prefix(dir).unwrap_or(path).trim_end_matches('/');
            if name.is_empty() || name == "." || name == ".." {
                // The directory's own marker; or keys another S3 client wrote with an
                // empty, `.` or `..` part (`a//b`, `a/./b`), which no FTP path reaches
                // and which would read as this directory or its parent (a mirroring
                // client would walk into them again).
                continue;
            }
            let m = e.metadata();
            let stat = match mode {
                StatMode::None => None,
                _ if m.is_dir() => Some(dir_stat(secs(m), path.trim_end_matches('/'))),
                _ => Some(file_stat(m, path)),
            };
            batch.push(DirEntry {
                name: name.as_bytes().to_vec(),
                stat,
            });
        }
        batch
    }
}

/// A download: the object's bytes from the offset, read ahead in parts by the runtime.
pub(super) struct ObjectReader {
    pub(super) store: ObjectStore,
    pub(super) stream: Pin<Box<opendal::BufferStream>>,
    pub(super) current: Buffer,
    pub(super) size: u64,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("size", &self.size)
            .finish()
    }
}

impl io::Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while !self.current.has_remaining() {
            let stream = &mut self.stream;
            let next = self
                .store
                .block_on(async move { stream.next().await.transpose() })
                .map_err(io_error)?;
            match next {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.remaining());
        self.current.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

impl FileReader for ObjectReader {
    fn size(&self) -> u64 {
        self.size
    }

    fn is_inline(&self) -> bool {
        false
    }
}

/// An upload: a multipart upload that completes at [`FileWriter::finish`] and is aborted
/// if dropped before.
pub(super) struct ObjectWriter {
    pub(super) store: ObjectStore,
    /// `None` once finished.
    pub(super) writer: Option<opendal::Writer>,
    /// Counts the upload as open until it is completed or aborted.
    pub(super) open: Option<OpenUpload>,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("finished", &self.writer.is_none())
            .finish()
    }
}

impl io::Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(w) = self.writer.as_mut() else {
            return Err(io::Error::other("the upload is complete"));
        };
        let data = Buffer::from(buf.to_vec());
        self.store
            .block_on(async move { w.write(data).await })
            .map_err(io_error)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for ObjectWriter {
    fn finish(&mut self) -> io::Result<()> {
        let Some(mut w) = self.writer.take() else {
            return Ok(());
        };
        let result = self.store.block_on(async move {
            let r = w.close().await;
            if r.is_err() {
                let _ = w.abort().await;
            }
            r
        });
        self.open = None;
        result.map(|_| ()).map_err(io_error)
    }

    fn is_inline(&self) -> bool {
        false
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // Unfinished: abort the upload so no part stays stored. Dropped anywhere (the
        // reactor thread too), so the abort runs on the store's runtime, not here.
        if let Some(mut w) = self.writer.take() {
            // Open until the abort has run (ObjectStore::settle waits for it).
            let open = self.open.take();
            self.store.inner.runtime.spawn(async move {
                if let Err(e) = w.abort().await {
                    log::warn!(target: crate::logger::LOG, "object store: abort: {e}");
                }
                drop(open);
            });
        }
    }
}
