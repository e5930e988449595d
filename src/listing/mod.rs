//! Directory listings made a piece at a time (LIST, NLST, MLSD, and STAT with a path), so
//! that a directory of any size is never read or held whole and no piece holds the
//! reactor; the lines themselves are made in `format.rs` (pyftpdlib's `format_list` and
//! `format_mlsx`).
//!
//! Before working on this module read RFC 959 section 4.1.3 (LIST, NLST) and RFC 3659
//! section 7 (MLSD and its facts).

mod format;

pub use format::*;

use std::collections::VecDeque;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::authorizer::{Authorizer, Identity};
use crate::filesystem::{DirEntry, DirStream, Filesystem, StatMode, VirtualPath};

/// Entries formatted per piece of a listing: a few hundred, about a millisecond of work.
pub const CHUNK_ENTRIES: usize = 256;

/// Which listing a [`Listing`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `ls -l` lines (LIST, STAT with a path).
    List,
    /// Bare names (NLST).
    Nlst,
    /// RFC 3659 fact lines (MLSD).
    Mlsd,
}

/// What the MLSx `perm` fact is computed from: the user's permissions on each entry.
#[derive(Clone)]
pub struct PermContext {
    /// The authorizer to ask.
    pub authorizer: Arc<dyn Authorizer>,
    /// The user.
    pub user: String,
}

impl std::fmt::Debug for PermContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PermContext")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// LIST, NLST and STAT list a directory of at most this many entries sorted by name, as
/// pyftpdlib does; a larger one comes in the storage's order (readdir order on the local
/// disk), so that no listing is ever held whole. MLSD is never sorted (nor is it in
/// pyftpdlib).
pub const SORT_LIMIT: usize = 10_000;

#[derive(Debug)]
enum Entries {
    Dir {
        /// What is left to read; `None` once the end was seen.
        stream: Option<Box<dyn DirStream>>,
        /// Entries read ahead to sort them, served before the rest of `stream`.
        queue: VecDeque<DirEntry>,
        /// Whether the first piece still has to read ahead (up to `sort_limit` + 1).
        sort_pending: bool,
    },
    /// A listing of one file (LIST or NLST of a file name).
    One(Option<DirEntry>),
}

/// A listing being made a piece at a time ([`next_chunk`](Self::next_chunk)), so that a
/// directory of a million entries is never read or held whole: the data channel asks for
/// the next piece only when it has sent the last one.
#[derive(Debug)]
pub struct Listing {
    entries: Entries,
    format: ListFormat,
    facts: Vec<&'static str>,
    perm: Option<PermContext>,
    /// Where the listed directory lives (for per-entry permissions).
    real_dir: PathBuf,
    names: NameCache,
    now: i64,
    gmt: bool,
    /// [`SORT_LIMIT`], smaller in tests.
    sort_limit: usize,
    /// The user whose ids the pieces are read under, where the authorizer impersonates.
    identity: Option<Identity>,
}

impl Listing {
    /// Opens a listing of `path` (a virtual path) in `fs`: a directory's entries, or the one
    /// entry of a file (not for MLSD, which names directories only: `NotADirectory`).
    /// `facts` and `perm` are MLSD's; `now` and `gmt` LIST's time column.
    ///
    /// # Errors
    /// The path cannot be read.
    pub fn open(
        fs: &dyn Filesystem,
        path: &Path,
        format: ListFormat,
        facts: Vec<&'static str>,
        perm: Option<PermContext>,
        now: i64,
        gmt: bool,
    ) -> io::Result<Listing> {
        let meta = fs.stat(path)?;
        let (entries, real_dir) = if meta.is_dir() {
            let entries = Entries::Dir {
                stream: Some(fs.read_dir(path)?),
                queue: VecDeque::new(),
                sort_pending: format != ListFormat::Mlsd,
            };
            (entries, fs.real_path(path))
        } else if format == ListFormat::Mlsd {
            // RFC 3659 section 7.2.1: MLSD names a directory; a file is a 501.
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "Not a directory",
            ));
        } else {
            let vp = VirtualPath::new(path);
            let (dir, name) = vp.split_last().unwrap_or((b"", b""));
            let stat = match format {
                ListFormat::Nlst => None,
                _ => Some(fs.lstat(path)?),
            };
            let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
            (
                Entries::One(Some(DirEntry {
                    name: name.to_vec(),
                    stat,
                })),
                fs.real_path(&Path::new("/").join(dir)),
            )
        };
        Ok(Listing {
            entries,
            format,
            facts,
            perm,
            real_dir,
            names: NameCache::default(),
            now,
            gmt,
            sort_limit: SORT_LIMIT,
            identity: None,
        })
    }

    /// A listing with nothing in it (a placeholder).
    pub(crate) fn empty() -> Listing {
        Listing {
            entries: Entries::One(None),
            format: ListFormat::Nlst,
            facts: Vec::new(),
            perm: None,
            real_dir: PathBuf::new(),
            names: NameCache::default(),
            now: 0,
            gmt: true,
            sort_limit: SORT_LIMIT,
            identity: None,
        }
    }

    /// Whether the listing is known to have nothing more, without reading further: a
    /// directory read to its end ahead of sorting and served, or the one file served. The
    /// data channel then ends after the last piece instead of asking for an empty one.
    pub fn is_done(&self) -> bool {
        match &self.entries {
            Entries::Dir { stream, queue, .. } => stream.is_none() && queue.is_empty(),
            Entries::One(e) => e.is_none(),
        }
    }

    /// Reads the next pieces as the user the listing was opened for (see
    /// [`next_chunk`](Self::next_chunk)); the server runs this on its worker pool.
    pub(crate) fn next_chunk_as_user(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        match self.identity.clone() {
            None => self.next_chunk(max),
            Some(id) => id
                .run(|| self.next_chunk(max))
                .unwrap_or_else(|_| Err(io::Error::other("can't switch to the user's identity"))),
        }
    }

    /// Reads the rest of the listing as the user it was opened for: storage work that
    /// reaches the kernel runs under the user's ids, as the session's other calls do.
    pub(crate) fn set_identity(&mut self, id: Identity) {
        self.identity = Some(id);
    }

    /// The next piece of the listing, at most `max` entries' lines; `None` at the end.
    ///
    /// # Errors
    /// Reading the directory failed.
    pub fn next_chunk(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mode = match self.format {
            ListFormat::List => StatMode::Link,
            ListFormat::Nlst => StatMode::None,
            ListFormat::Mlsd => StatMode::Follow,
        };
        let batch = self.next_entries(max.max(1), mode)?;
        if batch.is_empty() {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(batch.len() * 64);
        for e in batch {
            match self.format {
                ListFormat::Nlst => {
                    push_name(&mut out, &e.name);
                    out.extend_from_slice(b"\r\n");
                }
                // An entry that vanished or cannot be read is left out rather than failing
                // the whole listing.
                ListFormat::List => {
                    if let Some(st) = &e.stat {
                        push_list_line(&mut out, &e.name, st, &mut self.names, self.now, self.gmt);
                    }
                }
                ListFormat::Mlsd => {
                    let Some(st) = &e.stat else { continue };
                    let perm = match &self.perm {
                        Some(p) => {
                            let real = self.real_dir.join(std::ffi::OsStr::from_bytes(&e.name));
                            mlsx_perm(st.is_dir(), |x| p.authorizer.has_perm(&p.user, x, &real))
                        }
                        None => String::new(),
                    };
                    push_mlsx_line(&mut out, &e.name, st, &self.facts, &perm);
                }
            }
        }
        Ok(Some(out))
    }

    /// Up to `max` entries: first those read ahead (sorted when the directory ended within
    /// the limit), then the rest of the directory; empty at the end.
    fn next_entries(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        let (stream, queue, sort_pending) = match &mut self.entries {
            Entries::One(e) => return Ok(e.take().into_iter().collect()),
            Entries::Dir {
                stream,
                queue,
                sort_pending,
            } => (stream, queue, sort_pending),
        };
        if std::mem::take(sort_pending) {
            let mut ended = false;
            if let Some(s) = stream.as_mut() {
                while queue.len() <= self.sort_limit {
                    let batch = s.next_batch(self.sort_limit + 1 - queue.len(), mode)?;
                    if batch.is_empty() {
                        ended = true;
                        break;
                    }
                    queue.extend(batch);
                }
            }
            if ended {
                *stream = None;
                queue
                    .make_contiguous()
                    .sort_unstable_by(|a, b| a.name.cmp(&b.name));
            }
        }
        if !queue.is_empty() {
            let n = max.min(queue.len());
            return Ok(queue.drain(..n).collect());
        }
        let Some(s) = stream.as_mut() else {
            return Ok(Vec::new());
        };
        let batch = s.next_batch(max, mode)?;
        if batch.is_empty() {
            *stream = None;
        }
        Ok(batch)
    }

    /// The whole listing at once (STAT with a path: the reply is one message).
    ///
    /// # Errors
    /// As [`next_chunk`](Self::next_chunk).
    pub fn collect_all(mut self) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next_chunk(CHUNK_ENTRIES)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::Stat;

    #[derive(Debug)]
    struct Fixed {
        names: VecDeque<&'static str>,
        batch: usize,
    }

    impl DirStream for Fixed {
        fn next_batch(&mut self, max: usize, _: StatMode) -> io::Result<Vec<DirEntry>> {
            let n = max.min(self.batch).min(self.names.len());
            Ok(self
                .names
                .drain(..n)
                .map(|name| DirEntry {
                    name: name.as_bytes().to_vec(),
                    stat: Some(Stat {
                        kind: crate::filesystem::FileKind::File,
                        size: 0,
                        mtime: 0,
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        nlink: 1,
                        dev: 0,
                        ino: 0,
                        link_target: None,
                    }),
                })
                .collect())
        }
    }

    /// The names a listing of `names` gives, in the order given, with `sort_limit`.
    fn listed(names: &[&'static str], format: ListFormat, sort_limit: usize) -> Vec<String> {
        let mut l = Listing::empty();
        l.format = format;
        l.facts = vec!["type"];
        l.sort_limit = sort_limit;
        l.entries = Entries::Dir {
            stream: Some(Box::new(Fixed {
                names: names.iter().copied().collect(),
                batch: 2,
            })),
            queue: VecDeque::new(),
            sort_pending: format != ListFormat::Mlsd,
        };
        let mut out = Vec::new();
        while let Some(chunk) = l.next_chunk(3).unwrap() {
            out.extend_from_slice(&chunk);
        }
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| line.rsplit([' ', ';']).next().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_listing_read_ahead_knows_its_end() {
        let fixed = |limit: usize| {
            let mut l = Listing::empty();
            l.sort_limit = limit;
            l.entries = Entries::Dir {
                stream: Some(Box::new(Fixed {
                    names: ["b", "a", "c"].into_iter().collect(),
                    batch: 2,
                })),
                queue: VecDeque::new(),
                sort_pending: true,
            };
            l
        };
        // Sorted: the whole directory was read ahead, so the last piece says it is the last.
        let mut l = fixed(100);
        assert!(!l.is_done());
        assert_eq!(l.next_chunk(2).unwrap().unwrap(), b"a\r\nb\r\n");
        assert!(!l.is_done());
        assert_eq!(l.next_chunk(2).unwrap().unwrap(), b"c\r\n");
        assert!(l.is_done());
        // Streamed: the end is known only from the empty batch.
        let mut l = fixed(0);
        while l.next_chunk(2).unwrap().is_some() {}
        assert!(l.is_done());
        assert!(Listing::empty().is_done());
    }

    #[test]
    fn small_directories_are_sorted_for_list_and_nlst_only() {
        let names = ["zeta", "Beta", "alpha", "b", "a.txt", "delta", "é"];
        let sorted = ["Beta", "a.txt", "alpha", "b", "delta", "zeta", "é"];
        for format in [ListFormat::List, ListFormat::Nlst] {
            // Within the limit (equal to it too): sorted by name, bytewise as pyftpdlib's
            // sort of str (UTF-8 byte order is code point order).
            assert_eq!(listed(&names, format, 100), sorted, "{format:?}");
            assert_eq!(listed(&names, format, names.len()), sorted, "{format:?}");
            // Past it: every entry once, in the storage's order.
            assert_eq!(listed(&names, format, names.len() - 1), names, "{format:?}");
            assert_eq!(listed(&names, format, 0), names, "{format:?}");
        }
        assert_eq!(listed(&names, ListFormat::Mlsd, 100), names);
        assert!(listed(&[], ListFormat::Nlst, 100).is_empty());
    }

    #[test]
    fn listings_come_in_pieces() {
        use crate::filesystem::{MemoryFilesystem, WriteMode};
        let fs = MemoryFilesystem::new();
        fs.mkdir(Path::new("/d")).unwrap();
        for i in 0..1000 {
            fs.open_write(Path::new(&format!("/d/f{i:04}")), WriteMode::Truncate)
                .unwrap();
        }
        let mut l = Listing::open(
            &fs,
            Path::new("/d"),
            ListFormat::Nlst,
            vec![],
            None,
            0,
            true,
        )
        .unwrap();
        let mut lines = 0;
        let mut pieces = 0;
        while let Some(chunk) = l.next_chunk(100).unwrap() {
            pieces += 1;
            lines += chunk
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
        }
        assert_eq!((pieces, lines), (10, 1000));
        let one = Listing::open(
            &fs,
            Path::new("/d/f0001"),
            ListFormat::List,
            vec![],
            None,
            0,
            true,
        )
        .unwrap()
        .collect_all()
        .unwrap();
        let one = String::from_utf8(one).unwrap();
        assert!(one.starts_with("-rw-r--r--"), "{one}");
        assert!(one.ends_with(" f0001\r\n"), "{one}");
        let err = Listing::open(
            &fs,
            Path::new("/d/f0001"),
            ListFormat::Mlsd,
            vec![],
            None,
            0,
            true,
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }
}
