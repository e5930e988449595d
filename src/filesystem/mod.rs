//! Storage: what a session's files live on (pyftpdlib's `AbstractedFS`), behind one trait so
//! that the local disk, memory or an object store can stand behind the same server.
//!
//! # Paths
//!
//! Every path a [`Filesystem`] receives is a *virtual path*: absolute, `/`-separated, with
//! no `.`, `..` or empty parts, `/` being the user's home. The session makes it from what
//! the client sent with [`ftpnorm`] and [`VirtualPath`]; the storage maps it to where the
//! bytes live and must never let it reach anything outside the home. Names are bytes, as on
//! Unix: a name that is not UTF-8 reaches the storage unchanged.
//!
//! # Types
//!
//! Calls answer with the crate's own types, not `std::fs`'s: a [`Stat`] record, a
//! [`DirStream`] read in batches, and [`FileReader`]/[`FileWriter`] objects that may expose
//! a raw file descriptor (the local disk does, so RETR keeps sendfile(2)).
//!
//! # Where calls run
//!
//! A call may block (a slow disk, NFS, an object store over the network), so the server
//! makes every call on its worker pool, never on the reactor thread, unless the storage says
//! its calls are cheap ([`Filesystem::is_inline`], true only for [`MemoryFilesystem`]).
//! Reads and writes of file *contents* run on the reactor thread (the page cache) unless
//! the open file says otherwise ([`FileReader::is_inline`], [`FileWriter::is_inline`]).
//!
//! # Writing another back-end
//!
//! An object store (S3 and alike) can implement the trait with these choices: directories are
//! prefixes (`mkdir` writes a marker object, `rmdir` of a non-empty prefix fails with
//! `DirectoryNotEmpty`); `rename` of a file is copy then delete (not atomic), of a directory
//! `Unsupported`; `open_write` streams a multipart upload and [`FileWriter::finish`] completes
//! it (dropping the writer without `finish` aborts it, so no partial object is visible);
//! [`WriteMode::Append`] and [`WriteMode::At`] are `Unsupported` where the service cannot
//! append; `open_read` at an offset is a ranged read; `read_dir` pages through the listing
//! by prefix; `chmod` is `Unsupported`. Every error becomes a reply (550, 451, 452, 553) and
//! the session goes on. See docs/architecture.md.

mod homes;
mod local;
mod memory;
#[cfg(feature = "opendal")]
mod object;

use std::fmt;
use std::io;
use std::os::unix::io::RawFd;
use std::path::{Path, PathBuf};

pub(crate) use homes::Homes;
pub use local::OsFilesystem;
pub use memory::{MemoryFilesystem, MemoryStore};
#[cfg(feature = "opendal")]
pub use object::{ObjectFilesystem, ObjectSettings, ObjectStore, S3Settings};

/// What kind of object a [`Stat`] describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only from [`Filesystem::lstat`] and listings that do not follow).
    Symlink,
    /// Anything else: a device, a FIFO, a socket.
    Other,
}

/// A file's metadata, as far as FTP shows it (stat(2) for the local disk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The kind of object.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch (UTC).
    pub mtime: i64,
    /// `st_mode`: the file type bits and the permission bits (`0o100644` for a plain file).
    pub mode: u32,
    /// Owner's user id.
    pub uid: u32,
    /// Owner's group id.
    pub gid: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// Device and inode, for the MLSx `unique` fact; any value unique within the storage.
    pub dev: u64,
    /// See [`dev`](Self::dev).
    pub ino: u64,
    /// Where a symbolic link points, when `kind` is [`FileKind::Symlink`] and it was read.
    pub link_target: Option<Vec<u8>>,
}

impl Stat {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// Whether this is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind == FileKind::Symlink
    }
}

/// Which metadata a [`DirStream`] gives with each name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatMode {
    /// Names only (NLST).
    None,
    /// The entry itself, not following links, with the link target (LIST).
    Link,
    /// What the entry leads to, following links (MLSD); entries that cannot be followed (a
    /// dangling link) are left out.
    Follow,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The name, as bytes.
    pub name: Vec<u8>,
    /// Its metadata, when asked for and readable; an entry that vanished between the read
    /// of its name and its stat has `None`.
    pub stat: Option<Stat>,
}

/// A directory being read, a batch at a time, so that a listing of a million entries never
/// has to be held whole.
pub trait DirStream: Send + fmt::Debug {
    /// Up to `max` more entries, with metadata as `mode` asks; an empty batch at the end. The
    /// order is the storage's (the local disk's is readdir order).
    ///
    /// # Errors
    /// Errors reading the directory; errors stat-ing one entry only drop its `stat`.
    fn next_batch(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>>;
}

/// An open file being read (RETR).
///
/// Contents are read by the data channel on the reactor thread, in pieces of at most the
/// buffer size: for the local disk that is the page cache (or sendfile(2) straight from it),
/// as in every FTP server. A back-end whose reads wait on the network says so with
/// [`is_inline`](Self::is_inline), and its reads run on the worker pool instead.
pub trait FileReader: io::Read + Send + fmt::Debug {
    /// The file descriptor behind the reader, if it is a plain file, for sendfile(2). The
    /// descriptor's reads must start at the offset the reader was opened at.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// The file's size in bytes when it was opened.
    fn size(&self) -> u64;

    /// Whether reads are cheap enough for the reactor thread: the page cache, memory.
    /// Default true. A reader whose reads wait on the network (an object store) returns
    /// false, and the server then reads it on its worker pool, a piece of up to 1 MiB at a
    /// time, one piece ahead of what it sends.
    fn is_inline(&self) -> bool {
        true
    }
}

/// An open file being written (STOR, APPE, STOU). See [`FileReader`] for where writes run.
pub trait FileWriter: io::Write + Send + fmt::Debug {
    /// The descriptor of the plain file behind the writer, if bytes may go straight to it.
    /// When it gives one, the server may write binary uploads into it with splice(2), at
    /// the descriptor's current position (which moves on), between calls to `write`. A
    /// writer that buffers, transforms or counts what it is given must return `None`.
    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    /// Completes the upload: after it the file is visible whole. A writer dropped without
    /// `finish` leaves what was written (the local disk) or nothing (a store that commits on
    /// `finish`): say which in the back-end's docs.
    ///
    /// # Errors
    /// The final write or commit failed.
    fn finish(&mut self) -> io::Result<()> {
        self.flush()
    }

    /// Whether writes and [`finish`](Self::finish) are cheap enough for the reactor thread.
    /// Default true. A writer that waits on the network (a multipart upload) returns false,
    /// and the server then hands it the upload in pieces of up to 1 MiB on its worker pool,
    /// reading the next piece from the client meanwhile, and calls `finish` there too.
    ///
    /// Dropping is not moved: a writer whose upload ends without `finish` (ABOR, a reset,
    /// a failed write or commit) is dropped on the reactor thread. An abort that waits on
    /// the network (aborting a multipart upload) belongs on a thread or runtime of the
    /// back-end's own, started from `Drop`, not done in it.
    fn is_inline(&self) -> bool {
        true
    }
}

/// How [`Filesystem::open_write`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Create or truncate (STOR).
    Truncate,
    /// Create or keep the bytes and write at the end (APPE).
    Append,
    /// Keep the first `n` bytes, drop the rest and write from there (REST n, then STOR).
    At(u64),
    /// Create a file that must not exist yet (STOU): `AlreadyExists` if it does.
    CreateNew,
}

/// A session's storage: the file operations on virtual paths (see the module docs).
///
/// Operations that name an object act on a symbolic link itself where the command does
/// (`lstat`, `remove`, `rename`) and follow it elsewhere, but never out of the home.
#[doc(alias = "AbstractedFS")]
pub trait Filesystem: Send + Sync + fmt::Debug {
    /// Metadata, following symbolic links.
    ///
    /// # Errors
    /// `NotFound` and the storage's other errors, as for every call below.
    fn stat(&self, path: &Path) -> io::Result<Stat>;

    /// Metadata of the object itself; a link's target is in [`Stat::link_target`].
    fn lstat(&self, path: &Path) -> io::Result<Stat>;

    /// Opens a directory for reading.
    fn read_dir(&self, path: &Path) -> io::Result<Box<dyn DirStream>>;

    /// Opens a file for reading from `offset`.
    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FileReader>>;

    /// Opens a file for writing.
    fn open_write(&self, path: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>>;

    /// Creates a directory.
    fn mkdir(&self, path: &Path) -> io::Result<()>;

    /// Removes an empty directory.
    fn rmdir(&self, path: &Path) -> io::Result<()>;

    /// Removes a file, or a symbolic link itself.
    fn remove(&self, path: &Path) -> io::Result<()>;

    /// Renames a file, directory or link (the link itself).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Sets the permission bits (SITE CHMOD).
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()>;

    /// Sets the modification time, seconds since the epoch (MFMT).
    fn set_mtime(&self, path: &Path, secs: i64) -> io::Result<()>;

    /// Where a virtual path lives, for hooks, logs and the authorizer's per-directory
    /// permissions (`has_perm`); for the local disk the path on disk, made without touching
    /// the disk.
    fn real_path(&self, path: &Path) -> PathBuf;

    /// Whether calls are cheap enough to make on the reactor thread (memory). Default false:
    /// every call goes to the worker pool. The calls of an inline storage are not wrapped
    /// in [`Authorizer::impersonate_user`](crate::Authorizer::impersonate_user): the reactor
    /// thread never takes a user's ids, and a storage that never reaches the kernel has
    /// nothing the ids would guard.
    fn is_inline(&self) -> bool {
        false
    }
}

/// Normalises an FTP path the client sent against the current directory `cwd` (itself a
/// virtual path): `x` in `/foo` is `/foo/x`; `.` and `..` are resolved and never climb
/// above `/`; repeated slashes collapse. The bytes of each name are kept as they are.
pub fn ftpnorm(cwd: &[u8], arg: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let joined: Vec<&[u8]> = if arg.first() == Some(&b'/') {
        arg.split(|&b| b == b'/').collect()
    } else {
        cwd.split(|&b| b == b'/')
            .chain(arg.split(|&b| b == b'/'))
            .collect()
    };
    for part in joined {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(arg.len() + cwd.len() + 1);
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// A virtual path's parts: the path relative to the home, and the parent and last name.
#[derive(Debug, Clone, Copy)]
pub struct VirtualPath<'a>(&'a [u8]);

impl<'a> VirtualPath<'a> {
    /// Wraps a normalised virtual path (see [`ftpnorm`]).
    pub fn new(path: &'a Path) -> VirtualPath<'a> {
        use std::os::unix::ffi::OsStrExt;
        VirtualPath(path.as_os_str().as_bytes())
    }

    /// The path without its leading `/`: empty for the home itself.
    pub fn relative(&self) -> &'a [u8] {
        let mut p = self.0;
        while let [b'/', rest @ ..] = p {
            p = rest;
        }
        p
    }

    /// The names, in order.
    pub fn parts(&self) -> impl Iterator<Item = &'a [u8]> {
        self.0.split(|&b| b == b'/').filter(|p| !p.is_empty())
    }

    /// The parent (a virtual path) and the last name; `None` for the home itself.
    pub fn split_last(&self) -> Option<(&'a [u8], &'a [u8])> {
        let rel = self.relative();
        if rel.is_empty() {
            return None;
        }
        match rel.iter().rposition(|&b| b == b'/') {
            Some(i) => Some((&rel[..i], &rel[i + 1..])),
            None => Some((&[][..], rel)),
        }
    }
}

/// The `st_mode` type bits of a kind, for back-ends that have no mode of their own.
pub fn kind_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::File => libc::S_IFREG,
        FileKind::Dir => libc::S_IFDIR,
        FileKind::Symlink => libc::S_IFLNK,
        FileKind::Other => libc::S_IFIFO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftpnorm_resolves_dots_and_stays_under_root() {
        assert_eq!(ftpnorm(b"/", b""), b"/");
        assert_eq!(ftpnorm(b"/", b"x"), b"/x");
        assert_eq!(ftpnorm(b"/", b"/a//b/./c/"), b"/a/b/c");
        assert_eq!(ftpnorm(b"/", b"../../.."), b"/");
        assert_eq!(ftpnorm(b"/", b"/../etc/passwd"), b"/etc/passwd");
        assert_eq!(ftpnorm(b"/foo", b"x"), b"/foo/x");
        assert_eq!(ftpnorm(b"/foo", b".."), b"/");
        assert_eq!(ftpnorm(b"/", b"caf\xe9.txt"), b"/caf\xe9.txt");
        assert_eq!(ftpnorm(b"/", b"-dash"), b"/-dash");
        assert_eq!(ftpnorm(b"/a", b"\\..\\x"), b"/a/\\..\\x");
    }

    #[test]
    fn virtual_path_parts() {
        let p = VirtualPath::new(Path::new("/a/b/c"));
        assert_eq!(p.relative(), b"a/b/c");
        assert_eq!(p.split_last(), Some((&b"a/b"[..], &b"c"[..])));
        assert_eq!(p.parts().collect::<Vec<_>>(), vec![&b"a"[..], b"b", b"c"]);
        let top = VirtualPath::new(Path::new("/x"));
        assert_eq!(top.split_last(), Some((&b""[..], &b"x"[..])));
        assert!(VirtualPath::new(Path::new("/")).split_last().is_none());
    }
}
