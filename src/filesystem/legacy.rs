//! The filesystem a session sees: a chroot-style jail over the real one (pyftpdlib's
//! `AbstractedFS`).
//!
//! Paths come in two kinds. *FTP paths* are what the client sees: absolute, `/`-separated,
//! rooted at the user's home (`/` is the home). *Real paths* are where the bytes live. The
//! [`Filesystem`] trait maps between the two ([`ftpnorm`](Filesystem::ftpnorm),
//! [`ftp2fs`](Filesystem::ftp2fs), [`fs2ftp`](Filesystem::fs2ftp)) and says whether a real
//! path is inside the jail ([`validpath`](Filesystem::validpath)), resolving symbolic links so
//! that a link inside the root pointing outside it does not open a way out.
//!
//! The operations themselves (open, mkdir, rename, ...) take real paths, as pyftpdlib's do,
//! and are methods of the trait so that other storage can stand behind it.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// A session's view of storage: a root, a current directory and the file operations.
#[doc(alias = "AbstractedFS")]
pub trait Filesystem: Send {
    /// The real path of the user's home, the jail's root.
    fn root(&self) -> &Path;

    /// The current directory, as an FTP path.
    fn cwd(&self) -> &str;

    /// Sets the current directory (an FTP path, already normalised and checked).
    fn set_cwd(&mut self, ftppath: String);

    /// Normalises an FTP path against the current directory: `x` in `/foo` is `/foo/x`; `.`
    /// and `..` are resolved and can never climb above `/`.
    fn ftpnorm(&self, ftppath: &str) -> String {
        let joined = if ftppath.starts_with('/') {
            ftppath.to_string()
        } else {
            format!("{}/{}", self.cwd(), ftppath)
        };
        let mut parts: Vec<&str> = Vec::new();
        for part in joined.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        format!("/{}", parts.join("/"))
    }

    /// The real path behind an FTP path (relative ones taken from the current directory).
    fn ftp2fs(&self, ftppath: &str) -> PathBuf {
        let norm = self.ftpnorm(ftppath);
        let rel = norm.trim_start_matches('/');
        if rel.is_empty() {
            self.root().to_path_buf()
        } else {
            self.root().join(rel)
        }
    }

    /// The FTP path of a real path inside the root; `/` for anything outside it.
    fn fs2ftp(&self, fspath: &Path) -> String {
        match fspath.strip_prefix(self.root()) {
            Ok(rel) => {
                let mut out = String::new();
                for c in rel.components() {
                    if let Component::Normal(s) = c {
                        out.push('/');
                        out.push_str(&s.to_string_lossy());
                    }
                }
                if out.is_empty() {
                    out.push('/');
                }
                out
            }
            Err(_) => "/".to_string(),
        }
    }

    /// Whether a real path lies inside the root once every symbolic link in it that exists is
    /// resolved. A path whose last parts do not exist yet (a file about to be stored) is
    /// judged by its deepest existing ancestor.
    fn validpath(&self, path: &Path) -> bool {
        match resolve(path) {
            Ok(real) => real.starts_with(self.root()),
            Err(_) => false,
        }
    }

    /// Opens a file for reading.
    fn open_read(&self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    /// Opens (creating) a file for writing; `append` keeps its bytes, else it is truncated
    /// unless `offset` is given, in which case writing resumes there (REST + STOR).
    fn open_write(&self, path: &Path, append: bool, offset: Option<u64>) -> io::Result<File> {
        let mut o = OpenOptions::new();
        o.write(true).create(true).mode(0o666);
        if append {
            o.append(true);
        } else if offset.is_none() {
            o.truncate(true);
        }
        let mut f = o.open(path)?;
        if let Some(off) = offset {
            f.set_len(off)?;
            f.seek(SeekFrom::Start(off))?;
        }
        Ok(f)
    }

    /// Creates a new file that must not exist yet (STOU).
    fn create_new(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(path)
    }

    /// Creates a directory.
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    /// Removes an empty directory.
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir(path)
    }

    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    /// Renames a file or directory.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    /// Changes a file's mode bits.
    fn chmod(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    /// Sets a file's modification time (seconds since the epoch), leaving its access time.
    fn set_mtime(&self, path: &Path, secs: i64) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
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
        // SAFETY: `c` is a valid NUL-terminated path and `times` two valid timespecs, both
        // alive for the call.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Metadata, following symbolic links.
    fn stat(&self, path: &Path) -> io::Result<Metadata> {
        fs::metadata(path)
    }

    /// Metadata of the link itself.
    fn lstat(&self, path: &Path) -> io::Result<Metadata> {
        fs::symlink_metadata(path)
    }

    /// Where a symbolic link points.
    fn readlink(&self, path: &Path) -> io::Result<PathBuf> {
        fs::read_link(path)
    }

    /// Names in a directory, sorted bytewise.
    fn listdir(&self, path: &Path) -> io::Result<Vec<std::ffi::OsString>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            names.push(entry?.file_name());
        }
        names.sort();
        Ok(names)
    }

    /// Whether the path is a directory (following links).
    fn isdir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    /// Whether the path is a regular file (following links).
    fn isfile(&self, path: &Path) -> bool {
        path.is_file()
    }
}

/// Resolves every existing part of `path`, then appends the parts that do not exist.
fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        match existing.canonicalize() {
            Ok(real) => {
                let mut out = real;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A dangling symlink is "not found" too; treat the link target as unknown
                // and refuse it rather than guessing where it leads.
                if fs::symlink_metadata(&existing).is_ok() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "dangling symlink",
                    ));
                }
                let name = existing.file_name().map(|n| n.to_os_string());
                match (name, existing.parent()) {
                    (Some(name), Some(parent)) => {
                        rest.push(name);
                        existing = parent.to_path_buf();
                    }
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// The default [`Filesystem`]: the operating system's, jailed to a root.
#[doc(alias = "AbstractedFS")]
#[derive(Debug, Clone)]
pub struct OsFilesystem {
    root: PathBuf,
    cwd: String,
}

impl OsFilesystem {
    /// A view rooted at `root`, starting in `/`. The root is made canonical, so that
    /// [`Filesystem::validpath`] compares resolved paths with a resolved root.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(OsFilesystem {
            root: root.as_ref().canonicalize()?,
            cwd: "/".to_string(),
        })
    }
}

impl Filesystem for OsFilesystem {
    fn root(&self) -> &Path {
        &self.root
    }

    fn cwd(&self) -> &str {
        &self.cwd
    }

    fn set_cwd(&mut self, ftppath: String) {
        self.cwd = ftppath;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jail(name: &str) -> (PathBuf, OsFilesystem) {
        let d = std::env::temp_dir().join(format!("ftpdlib-fs-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("root/sub")).unwrap();
        fs::write(d.join("secret"), b"outside").unwrap();
        let fs = OsFilesystem::new(d.join("root")).unwrap();
        (d, fs)
    }

    #[test]
    fn ftpnorm_resolves_dots_and_stays_under_root() {
        let (_d, mut fs) = jail("norm");
        assert_eq!(fs.ftpnorm(""), "/");
        assert_eq!(fs.ftpnorm("x"), "/x");
        assert_eq!(fs.ftpnorm("/a//b/./c/"), "/a/b/c");
        assert_eq!(fs.ftpnorm("../../.."), "/");
        assert_eq!(fs.ftpnorm("/../etc/passwd"), "/etc/passwd");
        fs.set_cwd("/foo".into());
        assert_eq!(fs.ftpnorm("x"), "/foo/x");
        assert_eq!(fs.ftpnorm(".."), "/");
    }

    #[test]
    fn ftp2fs_and_back() {
        let (_d, fs) = jail("map");
        let root = fs.root().to_path_buf();
        assert_eq!(fs.ftp2fs("/"), root);
        assert_eq!(fs.ftp2fs("x"), root.join("x"));
        assert_eq!(fs.ftp2fs("../../etc/passwd"), root.join("etc/passwd"));
        assert_eq!(fs.fs2ftp(&root.join("a/b")), "/a/b");
        assert_eq!(fs.fs2ftp(&root), "/");
        assert_eq!(fs.fs2ftp(Path::new("/etc")), "/");
    }

    #[test]
    fn validpath_follows_symlinks() {
        let (d, fs) = jail("valid");
        let root = fs.root().to_path_buf();
        std::os::unix::fs::symlink(d.join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(&d, root.join("updir")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("inlink")).unwrap();
        std::os::unix::fs::symlink(d.join("nothing-here"), root.join("dangling")).unwrap();
        assert!(fs.validpath(&root));
        assert!(fs.validpath(&root.join("sub")));
        assert!(fs.validpath(&root.join("new-file")));
        assert!(fs.validpath(&root.join("inlink/new")));
        assert!(!fs.validpath(&root.join("leak")));
        assert!(!fs.validpath(&root.join("updir")));
        assert!(!fs.validpath(&root.join("updir/secret")));
        assert!(!fs.validpath(&root.join("updir/new-file")));
        assert!(!fs.validpath(&root.join("dangling")));
        assert!(!fs.validpath(Path::new("/etc/passwd")));
    }
}
