//! [`OsFilesystem`]: the local disk, every path resolved inside the user's home by the
//! kernel.
//!
//! The home is opened once as a directory descriptor. Every path is then opened relative to
//! it with openat2(2) and `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` (Linux 5.6+): `..` stops
//! at the home and a symbolic link, absolute or relative, is resolved as if the home were
//! `/`. A link swapped in between a check and a use can therefore never lead outside, and
//! there is no check to race. Where openat2 is missing (older kernels, seccomp filters that
//! answer ENOSYS) the same resolution is done a component at a time with
//! `openat(O_NOFOLLOW)`, reading each link and walking its target from the home.
//!
//! Calls that act on a name itself (lstat, unlink, rename, mkdir, rmdir) resolve the
//! *parent* that way and then use the `*at` call on the last name, so a link is removed or
//! renamed, not what it points to.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{
    DirEntry, DirStream, FileKind, FileReader, FileWriter, Filesystem, Stat, StatMode, VirtualPath,
    WriteMode,
};

/// Links followed in one resolution before ELOOP, as the kernel's limit.
const MAX_LINKS: u32 = 40;

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
}

fn cvt(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A FIFO, socket or device where a file was wanted: never opened for a transfer.
fn not_regular() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "Not a regular file")
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

/// openat(2) returning an owned descriptor.
fn openat(dir: RawFd, name: &CString, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid NUL-terminated string alive for the call; `dir` is an
        // open descriptor owned by the caller.
        let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by openat and is owned by nobody else.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn fstatat(dir: RawFd, name: &CString, flags: i32) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `name` is NUL-terminated and `st` a valid out-pointer, both alive for the call.
    cvt(unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, flags) })?;
    Ok(st)
}

fn fstat(fd: RawFd) -> io::Result<libc::stat> {
    // SAFETY: as in `fstatat`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` a valid out-pointer.
    cvt(unsafe { libc::fstat(fd, &mut st) })?;
    Ok(st)
}

fn readlinkat(dir: RawFd, name: &CString) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `buf` is writable for its length; `name` is NUL-terminated.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

// st_nlink is u64 on x86_64 and u32 on other targets.
#[allow(clippy::unnecessary_cast)]
fn to_stat(st: &libc::stat) -> Stat {
    let kind = match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Dir,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    };
    Stat {
        kind,
        size: st.st_size.max(0) as u64,
        mtime: st.st_mtime,
        mode: st.st_mode,
        uid: st.st_uid,
        gid: st.st_gid,
        nlink: st.st_nlink as u64,
        dev: st.st_dev,
        ino: st.st_ino,
        link_target: None,
    }
}

/// `/proc/self/fd/N`: the exact file behind a descriptor, for calls that have no `f*` form
/// usable on an `O_PATH` descriptor (chmod, utimensat).
fn proc_path(fd: &OwnedFd) -> io::Result<CString> {
    cstr(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_bytes())
}

/// The home directory descriptor and how paths are resolved under it; shared by a
/// filesystem and the directory streams it opens.
#[derive(Debug)]
struct Jail {
    root_fd: OwnedFd,
    /// Device and inode of the home, as fstat(2) of `root_fd` gave them.
    id: (u64, u64),
    /// Cleared the first time openat2 answers ENOSYS.
    openat2: AtomicBool,
}

impl Jail {
    /// Opens `rel` (relative to the home, no leading `/`) inside the home, following links.
    fn open(&self, rel: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
        if self.openat2.load(Ordering::Relaxed) {
            match self.openat2(rel, flags, mode) {
                Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                    self.openat2.store(false, Ordering::Relaxed);
                }
                other => return other,
            }
        }
        self.walk(rel, flags, mode)
    }

    fn openat2(&self, rel: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let path = cstr(if rel.is_empty() { b"." } else { rel })?;
        // SAFETY: an all-zero open_how is valid (no flags).
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (flags | libc::O_CLOEXEC) as u64;
        how.mode = if flags & (libc::O_CREAT | libc::O_TMPFILE) != 0 {
            u64::from(mode)
        } else {
            0
        };
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        // The kernel answers EAGAIN when a rename raced the resolution: try again a few times.
        for _ in 0..16 {
            // SAFETY: `path` is NUL-terminated, `how` a valid open_how of the size passed, both
            // alive for the call; `root_fd` is open for the life of `self`.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    self.root_fd.as_raw_fd(),
                    path.as_ptr(),
                    &how as *const libc::open_how,
                    std::mem::size_of::<libc::open_how>(),
                )
            };
            if fd >= 0 {
                // SAFETY: the descriptor was just returned by openat2 and is ours alone.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => return Err(e),
            }
        }
        Err(errno(libc::EAGAIN))
    }

    /// RESOLVE_IN_ROOT done by hand: one component at a time, never following a link with
    /// the kernel; a link's target is read and walked from the home (absolute) or from where
    /// the link is (relative); `..` at the home stays at the home.
    fn walk(&self, rel: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut todo: std::collections::VecDeque<Vec<u8>> =
            rel.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut links = 0u32;
        while let Some(name) = todo.pop_front() {
            match name.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                _ => {}
            }
            let cur = stack
                .last()
                .map_or(self.root_fd.as_raw_fd(), AsRawFd::as_raw_fd);
            let last = todo.iter().all(|n| n.is_empty() || n == b".");
            let c = cstr(&name)?;
            let probe = match openat(cur, &c, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                Ok(fd) => fd,
                Err(e) if last && e.raw_os_error() == Some(libc::ENOENT) => {
                    // Nothing there: create it, if the flags say so, without following.
                    return openat(cur, &c, flags | libc::O_NOFOLLOW, mode);
                }
                Err(e) => return Err(e),
            };
            let st = fstat(probe.as_raw_fd())?;
            if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
                links += 1;
                if links > MAX_LINKS {
                    return Err(errno(libc::ELOOP));
                }
                let target = readlinkat(cur, &c)?;
                if target.first() == Some(&b'/') {
                    stack.clear();
                }
                for part in target.split(|&b| b == b'/').rev() {
                    todo.push_front(part.to_vec());
                }
                continue;
            }
            if last {
                // O_NOFOLLOW: a link swapped in since the probe fails with ELOOP.
                return openat(cur, &c, flags | libc::O_NOFOLLOW, mode);
            }
            stack.push(probe);
        }
        let cur = stack
            .last()
            .map_or(self.root_fd.as_raw_fd(), AsRawFd::as_raw_fd);
        openat(cur, &cstr(b".")?, flags, mode)
    }

    /// The parent directory of a virtual path (opened inside the home) and its last name.
    fn parent(&self, path: &Path) -> io::Result<(OwnedFd, CString)> {
        let Some((dir, name)) = VirtualPath::new(path).split_last() else {
            // The home itself has no parent a client may act through.
            return Err(errno(libc::EPERM));
        };
        let fd = self.open(dir, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        Ok((fd, cstr(name)?))
    }
}

/// The local disk, jailed to a home directory (pyftpdlib's `AbstractedFS`).
#[doc(alias = "AbstractedFS")]
#[derive(Debug, Clone)]
pub struct OsFilesystem {
    root: PathBuf,
    jail: Arc<Jail>,
}

impl OsFilesystem {
    /// Storage rooted at `root`, which must be a directory; the path is made canonical and the
    /// directory opened once.
    ///
    /// # Errors
    /// The root does not exist or cannot be opened.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().canonicalize()?;
        let c = cstr(root.as_os_str().as_bytes())?;
        let fd = openat(libc::AT_FDCWD, &c, libc::O_PATH | libc::O_DIRECTORY, 0)?;
        let st = fstat(fd.as_raw_fd())?;
        Ok(OsFilesystem {
            root,
            jail: Arc::new(Jail {
                id: (st.st_dev, st.st_ino),
                root_fd: fd,
                openat2: AtomicBool::new(true),
            }),
        })
    }

    /// The canonical path of the home.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Device and inode of the home directory held open.
    pub(crate) fn id(&self) -> (u64, u64) {
        self.jail.id
    }

    /// Whether a copy other than this one holds the open home (a session's storage, when
    /// this is the copy [`Homes`](super::Homes) keeps).
    pub(crate) fn in_use(&self) -> bool {
        Arc::strong_count(&self.jail) > 1
    }

    /// Whether both hold the same open home (one descriptor).
    #[cfg(test)]
    pub(crate) fn shares_root(&self, other: &OsFilesystem) -> bool {
        Arc::ptr_eq(&self.jail, &other.jail)
    }

    /// Resolves paths a component at a time even where openat2 exists (the fallback for
    /// kernels before 5.6, made testable).
    #[doc(hidden)]
    pub fn without_openat2(self) -> Self {
        self.jail.openat2.store(false, Ordering::Relaxed);
        self
    }

    fn open(&self, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
        self.jail
            .open(VirtualPath::new(path).relative(), flags, mode)
    }
}

impl Filesystem for OsFilesystem {
    fn stat(&self, path: &Path) -> io::Result<Stat> {
        let fd = self.open(path, libc::O_PATH, 0)?;
        Ok(to_stat(&fstat(fd.as_raw_fd())?))
    }

    fn lstat(&self, path: &Path) -> io::Result<Stat> {
        let Ok((dir, name)) = self.jail.parent(path) else {
            return self.stat(path);
        };
        let st = fstatat(dir.as_raw_fd(), &name, libc::AT_SYMLINK_NOFOLLOW)?;
        let mut s = to_stat(&st);
        if s.is_symlink() {
            s.link_target = readlinkat(dir.as_raw_fd(), &name).ok();
        }
        Ok(s)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Box<dyn DirStream>> {
        let fd = self.open(path, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        let raw = std::os::fd::IntoRawFd::into_raw_fd(fd);
        // SAFETY: `raw` is an open directory descriptor we own; fdopendir takes it over.
        let dir = unsafe { libc::fdopendir(raw) };
        if dir.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so the descriptor is still ours to close.
            unsafe { libc::close(raw) };
            return Err(e);
        }
        Ok(Box::new(LocalDir {
            dir,
            rel: VirtualPath::new(path).relative().to_vec(),
            jail: Arc::clone(&self.jail),
        }))
    }

    fn open_read(&self, path: &Path, offset: u64) -> io::Result<Box<dyn FileReader>> {
        // O_NONBLOCK: opening a FIFO must not wait for a writer (it would hold a worker);
        // it is refused just below, and on a regular file the flag changes nothing.
        let fd = self.open(path, libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
        let st = fstat(fd.as_raw_fd())?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {}
            libc::S_IFDIR => return Err(errno(libc::EISDIR)),
            // A FIFO, socket or device: reads may block forever or never end.
            _ => return Err(not_regular()),
        }
        let size = st.st_size.max(0) as u64;
        let mut file = File::from(fd);
        // Past the end, the caller answers 554 from `size`; no seek (it could fail first).
        if offset > 0 && offset <= size {
            file.seek(SeekFrom::Start(offset))?;
        }
        Ok(Box::new(LocalFile { file, size }))
    }

    fn open_write(&self, path: &Path, mode: WriteMode) -> io::Result<Box<dyn FileWriter>> {
        let flags = libc::O_WRONLY
            | libc::O_CREAT
            | match mode {
                WriteMode::Truncate => libc::O_TRUNC,
                WriteMode::Append => libc::O_APPEND,
                WriteMode::At(_) => 0,
                WriteMode::CreateNew => libc::O_EXCL,
            };
        // O_NONBLOCK: a FIFO without a reader fails at once (ENXIO) instead of holding a
        // worker; one with a reader is refused below like any other non-regular file.
        let fd = match self.open(path, flags | libc::O_NONBLOCK, 0o666) {
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => return Err(not_regular()),
            r => r?,
        };
        if fstat(fd.as_raw_fd())?.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(not_regular());
        }
        let mut file = File::from(fd);
        if let WriteMode::At(n) = mode {
            file.set_len(n)?;
            file.seek(SeekFrom::Start(n))?;
        }
        Ok(Box::new(LocalFile { file, size: 0 }))
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.jail.parent(path)?;
        // SAFETY: `name` is NUL-terminated and `dir` open for the call.
        cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o777) }).map(drop)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.jail.parent(path)?;
        // SAFETY: as in `mkdir`.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) }).map(drop)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = self.jail.parent(path)?;
        // SAFETY: as in `mkdir`.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) }).map(drop)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (fdir, fname) = self.jail.parent(from)?;
        let (tdir, tname) = self.jail.parent(to)?;
        // SAFETY: both names are NUL-terminated and both directories open for the call.
        cvt(unsafe {
            libc::renameat(
                fdir.as_raw_fd(),
                fname.as_ptr(),
                tdir.as_raw_fd(),
                tname.as_ptr(),
            )
        })
        .map(drop)
    }

    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        let fd = self.open(path, libc::O_PATH, 0)?;
        let p = proc_path(&fd)?;
        // SAFETY: `p` is NUL-terminated; it names the file `fd` holds open.
        cvt(unsafe { libc::chmod(p.as_ptr(), mode as libc::mode_t) }).map(drop)
    }

    fn set_mtime(&self, path: &Path, secs: i64) -> io::Result<()> {
        let fd = self.open(path, libc::O_PATH, 0)?;
        let p = proc_path(&fd)?;
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: secs as libc::time_t,
                tv_nsec: 0,
            },
        ];
        // SAFETY: `p` is NUL-terminated and `times` two valid timespecs, alive for the call.
        cvt(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) }).map(drop)
    }

    fn real_path(&self, path: &Path) -> PathBuf {
        let rel = VirtualPath::new(path).relative();
        if rel.is_empty() {
            self.root.clone()
        } else {
            self.root.join(std::ffi::OsStr::from_bytes(rel))
        }
    }
}

/// A local file open for reading or writing.
#[derive(Debug)]
struct LocalFile {
    file: File,
    size: u64,
}

impl Read for LocalFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for LocalFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl FileReader for LocalFile {
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn size(&self) -> u64 {
        self.size
    }
}

impl FileWriter for LocalFile {
    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }
}

/// A directory being read with readdir(3).
#[derive(Debug)]
struct LocalDir {
    dir: *mut libc::DIR,
    /// The directory's path relative to the home, to follow links inside the jail.
    rel: Vec<u8>,
    jail: Arc<Jail>,
}

// SAFETY: the DIR stream is owned by this value alone and used only through `&mut self`,
// so it is never touched by two threads at once; moving it between threads is fine.
unsafe impl Send for LocalDir {}

impl Drop for LocalDir {
    fn drop(&mut self) {
        // SAFETY: `dir` came from fdopendir and is closed exactly once, here.
        unsafe { libc::closedir(self.dir) };
    }
}

impl LocalDir {
    fn entry_stat(&self, name: &CString, mode: StatMode) -> Option<Stat> {
        // SAFETY: `dir` is a valid open stream for the life of `self`.
        let dfd = unsafe { libc::dirfd(self.dir) };
        let st = fstatat(dfd, name, libc::AT_SYMLINK_NOFOLLOW).ok()?;
        let mut s = to_stat(&st);
        if !s.is_symlink() {
            return Some(s);
        }
        match mode {
            StatMode::None => Some(s),
            StatMode::Link => {
                s.link_target = readlinkat(dfd, name).ok();
                Some(s)
            }
            StatMode::Follow => {
                // Followed inside the jail: a link out of the home is not followed out.
                let mut rel = self.rel.clone();
                if !rel.is_empty() {
                    rel.push(b'/');
                }
                rel.extend_from_slice(name.as_bytes());
                let fd = self.jail.open(&rel, libc::O_PATH, 0).ok()?;
                Some(to_stat(&fstat(fd.as_raw_fd()).ok()?))
            }
        }
    }
}

impl DirStream for LocalDir {
    fn next_batch(&mut self, max: usize, mode: StatMode) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        while out.len() < max {
            // readdir reports errors only through errno, so clear it first.
            // SAFETY: __errno_location returns this thread's errno slot.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: `dir` is a valid open stream, used by this thread alone.
            let ent = unsafe { libc::readdir64(self.dir) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                if e.raw_os_error().unwrap_or(0) != 0 {
                    return Err(e);
                }
                break;
            }
            // SAFETY: readdir returned a valid entry whose d_name is NUL-terminated; it stays
            // valid until the next readdir on this stream, and is copied out before that.
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let owned = name.to_owned();
            let stat = match mode {
                StatMode::None => None,
                _ => self.entry_stat(&owned, mode),
            };
            if mode == StatMode::Follow && stat.is_none() {
                continue;
            }
            out.push(DirEntry {
                name: owned.into_bytes(),
                stat,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    use crate::testutil::TempDir;

    fn jail(name: &str) -> (TempDir, OsFilesystem) {
        let d = TempDir::new(&format!("local-{name}"));
        fs::create_dir_all(d.join("root/sub")).unwrap();
        fs::write(d.join("secret"), b"outside").unwrap();
        fs::write(d.join("root/sub/inside"), b"inside").unwrap();
        let fs = OsFilesystem::new(d.join("root")).unwrap();
        (d, fs)
    }

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    fn check_links(fs: &OsFilesystem, d: &Path) {
        let root = fs.root().to_path_buf();
        // Absolute and relative links out of the home resolve inside it (or not at all).
        assert_eq!(
            fs.stat(p("/leak")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            fs.stat(p("/updir/secret")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(fs.open_read(p("/rel-up"), 0).is_err());
        // `..` stops at the home.
        let mut r = fs.open_read(p("/sub/../../../sub/inside"), 0).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        // An absolute link is taken from the home: /sub means the home's sub.
        assert!(fs.stat(p("/abs-sub")).unwrap().is_dir());
        assert!(fs.stat(p("/abs-sub/inside")).unwrap().is_file());
        // Writing through a link out of the home lands inside it, never outside.
        drop(fs.open_write(p("/leak"), WriteMode::Truncate));
        assert_eq!(fs::read(d.join("secret")).unwrap(), b"outside");
        // The link itself: lstat sees it, remove removes it (even dangling), not the target.
        let l = fs.lstat(p("/dangling")).unwrap();
        assert!(l.is_symlink());
        assert_eq!(l.link_target.as_deref(), Some(&b"/nothing-here"[..]));
        fs.remove(p("/dangling")).unwrap();
        assert!(fs::symlink_metadata(root.join("dangling")).is_err());
        fs.rename(p("/abs-sub"), p("/renamed-link")).unwrap();
        assert!(fs::symlink_metadata(root.join("renamed-link"))
            .unwrap()
            .is_symlink());
        assert!(root.join("sub/inside").exists());
        // A listing that follows links does not follow them out of the home.
        let mut dir = fs.read_dir(p("/")).unwrap();
        let entries = dir.next_batch(100, StatMode::Follow).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
        assert!(!names.contains(&b"updir".to_vec()));
        assert!(names.contains(&b"sub".to_vec()));
    }

    fn links(d: &Path, fs: &OsFilesystem) {
        let root = fs.root();
        symlink(d.join("secret"), root.join("leak")).unwrap();
        symlink(d, root.join("updir")).unwrap();
        symlink("../secret", root.join("rel-up")).unwrap();
        symlink("/sub", root.join("abs-sub")).unwrap();
        symlink("/nothing-here", root.join("dangling")).unwrap();
    }

    #[test]
    fn links_stay_inside_with_openat2() {
        let (d, fs) = jail("openat2");
        links(&d, &fs);
        check_links(&fs, &d);
    }

    #[test]
    fn links_stay_inside_with_the_walk() {
        let (d, fs) = jail("walk");
        let fs = fs.without_openat2();
        links(&d, &fs);
        check_links(&fs, &d);
    }

    #[test]
    fn link_loops_end() {
        let (_d, fs) = jail("loop");
        symlink("b", fs.root().join("a")).unwrap();
        symlink("a", fs.root().join("b")).unwrap();
        assert!(fs.stat(p("/a")).is_err());
        assert!(fs.clone().without_openat2().stat(p("/a")).is_err());
    }

    #[test]
    fn file_operations() {
        let (_d, fs) = jail("ops");
        let mut w = fs.open_write(p("/f"), WriteMode::Truncate).unwrap();
        w.write_all(b"hello world").unwrap();
        w.finish().unwrap();
        drop(w);
        assert_eq!(fs.stat(p("/f")).unwrap().size, 11);
        let mut w = fs.open_write(p("/f"), WriteMode::At(5)).unwrap();
        w.write_all(b"!").unwrap();
        drop(w);
        let mut r = fs.open_read(p("/f"), 2).unwrap();
        assert_eq!(r.size(), 6);
        assert!(r.raw_fd().is_some());
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "llo!");
        let mut w = fs.open_write(p("/f"), WriteMode::Append).unwrap();
        w.write_all(b"?").unwrap();
        drop(w);
        assert_eq!(fs.stat(p("/f")).unwrap().size, 7);
        assert_eq!(
            fs.open_write(p("/f"), WriteMode::CreateNew)
                .unwrap_err()
                .kind(),
            io::ErrorKind::AlreadyExists
        );
        fs.mkdir(p("/d")).unwrap();
        assert!(fs.open_read(p("/d"), 0).is_err());
        fs.rename(p("/f"), p("/d/g")).unwrap();
        fs.chmod(p("/d/g"), 0o600).unwrap();
        assert_eq!(fs.stat(p("/d/g")).unwrap().mode & 0o777, 0o600);
        fs.set_mtime(p("/d/g"), 1_000_000_000).unwrap();
        assert_eq!(fs.stat(p("/d/g")).unwrap().mtime, 1_000_000_000);
        assert!(fs.rmdir(p("/d")).is_err());
        fs.remove(p("/d/g")).unwrap();
        fs.rmdir(p("/d")).unwrap();
        assert!(fs.remove(p("/")).is_err());
        assert_eq!(fs.real_path(p("/a/b")), fs.root().join("a/b"));
        assert_eq!(fs.real_path(p("/")), fs.root());
    }

    #[test]
    fn names_are_bytes() {
        let (_d, fs) = jail("bytes");
        let a = Path::new(std::ffi::OsStr::from_bytes(b"/caf\xe9"));
        let b = Path::new(std::ffi::OsStr::from_bytes(b"/caf\xe8"));
        fs.open_write(a, WriteMode::Truncate)
            .unwrap()
            .write_all(b"1")
            .unwrap();
        fs.open_write(b, WriteMode::Truncate)
            .unwrap()
            .write_all(b"22")
            .unwrap();
        assert_eq!(fs.stat(a).unwrap().size, 1);
        assert_eq!(fs.stat(b).unwrap().size, 2);
        let mut dir = fs.read_dir(p("/")).unwrap();
        let mut names: Vec<_> = dir
            .next_batch(100, StatMode::None)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![b"caf\xe8".to_vec(), b"caf\xe9".to_vec(), b"sub".to_vec()]
        );
        assert!(fs.stat(Path::new("/a\0b")).is_err());
    }

    #[test]
    fn listing_in_batches() {
        let (_d, fs) = jail("batches");
        for i in 0..25 {
            fs::write(fs.root().join(format!("f{i}")), b"x").unwrap();
        }
        let mut dir = fs.read_dir(p("/")).unwrap();
        let mut total = 0;
        loop {
            let batch = dir.next_batch(10, StatMode::Link).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 10);
            assert!(batch.iter().all(|e| e.stat.is_some()));
            total += batch.len();
        }
        assert_eq!(total, 26);
    }
}
