//! The homes the default storage has opened, kept by the path the authorizer gives, so
//! that a login does not resolve and open its home again: at most one stat(2) of the path
//! instead of resolving every component (realpath(3): a readlink per component) and
//! opening the directory. Sessions of one home share its descriptor.
//!
//! The stat is the check that the path still leads to the directory held: a home removed
//! and made again, moved away, or a link in its path pointed elsewhere gives another
//! device and inode, and the home is opened anew. An inode number can't be reused while
//! the cache holds the directory open, so equal numbers mean the same directory. The stat
//! also runs with the caller's rights, so a path the server can no longer search fails as
//! the open would have.
//!
//! A home checked less than [`FRESH`] ago is taken without the stat: logins in a burst
//! cost no system call for their home at all, and such a login whose password check is
//! cheap ([`Authorizer::is_inline`](crate::Authorizer::is_inline)) is done on the reactor
//! thread, with no trip through the worker pool. A home replaced is therefore seen by
//! logins at most [`FRESH`] later.
//!
//! The cache belongs to one [`Config`](crate::Config) and its clones: settings made anew
//! (the daemon's SIGHUP reload, [`FtpServer::set_config`](crate::FtpServer::set_config)
//! with a new `Config`) start with an empty one.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::OsFilesystem;

/// How long a home's check holds: logins within it take the home without a stat.
pub(crate) const FRESH: Duration = Duration::from_secs(1);

/// Homes kept at most; past this the cache starts again empty (a server with more users
/// than this logging in pays the first-login cost again, never more descriptors).
const MAX_HOMES: usize = 4096;

/// Homes no session holds kept at most, give or take the sessions that end between two
/// new homes: each is a descriptor held for nothing but the next login's speed. Past
/// this, a new home drops them. Without a bound, users logging in one after the other
/// left a descriptor each behind: a few hundred distinct homes under a limit of 256
/// descriptors, and no session could open a home or a socket any more.
const MAX_IDLE: usize = 64;

/// An open home and when its path was last seen to lead to it.
#[derive(Debug)]
struct Home {
    fs: OsFilesystem,
    checked: Instant,
}

/// Opened homes by path, keyed by the path's bytes (hashing a `Path` walks its
/// components: several times the cost).
#[derive(Debug, Default)]
pub(crate) struct Homes {
    open: Mutex<HashMap<OsString, Home>>,
}

impl Homes {
    /// The storage rooted at `home`: the one already open if it was checked less than
    /// [`FRESH`] ago or `home` still leads to it, else [`OsFilesystem::new`], kept for the
    /// next login.
    ///
    /// # Errors
    /// As [`OsFilesystem::new`]: the home does not exist, is not a directory, or can't be
    /// opened.
    pub(crate) fn open(&self, home: &Path) -> io::Result<OsFilesystem> {
        if let Some(fs) = self.fresh(home, Instant::now()) {
            return Ok(fs);
        }
        let meta = std::fs::metadata(home)?;
        let id = (meta.dev(), meta.ino());
        let checked = Instant::now();
        if let Some(h) = self.lock().get_mut(home.as_os_str()) {
            if h.fs.id() == id {
                h.checked = checked;
                return Ok(h.fs.clone());
            }
        }
        let fs = OsFilesystem::new(home)?;
        // Replaced between the stat and the open: serve what was opened, keep nothing.
        if fs.id() == id {
            let mut open = self.lock();
            if open.len() >= MAX_IDLE {
                open.retain(|_, h| h.fs.in_use());
            }
            if open.len() >= MAX_HOMES {
                open.clear();
            }
            let kept = Home {
                fs: fs.clone(),
                checked,
            };
            open.insert(home.as_os_str().to_owned(), kept);
        }
        Ok(fs)
    }

    /// The home at `home` if its path was checked less than [`FRESH`] before `now`: what
    /// [`open`](Self::open) then returns without a system call.
    pub(crate) fn fresh(&self, home: &Path, now: Instant) -> Option<OsFilesystem> {
        let open = self.lock();
        let h = open.get(home.as_os_str())?;
        (now.saturating_duration_since(h.checked) < FRESH).then(|| h.fs.clone())
    }

    /// The map; a thread that panicked while holding it left it whole (inserts and clears
    /// don't panic half-way).
    fn lock(&self) -> MutexGuard<'_, HashMap<OsString, Home>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
impl Homes {
    /// Every home due for its check, as if [`FRESH`] had passed.
    fn expire(&self) {
        for h in self.lock().values_mut() {
            h.checked = h.checked.checked_sub(FRESH).unwrap_or(h.checked);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filesystem::Filesystem;
    use crate::testutil::TempDir;
    use std::fs;

    #[test]
    fn a_home_is_opened_once_and_again_when_replaced() {
        let d = TempDir::new("homes");
        let home = d.join("alice");
        fs::create_dir(&home).unwrap();
        fs::write(home.join("a"), b"first").unwrap();
        let homes = Homes::default();
        let one = homes.open(&home).unwrap();
        let two = homes.open(&home).unwrap();
        assert!(
            one.shares_root(&two),
            "the second login reuses the open home"
        );
        assert!(homes.fresh(&home, Instant::now()).is_some());
        assert!(homes.fresh(&home, Instant::now() + FRESH).is_none());
        // Checked again after FRESH: still the same directory, so the same descriptor.
        homes.expire();
        assert!(homes.open(&home).unwrap().shares_root(&one));

        // Removed and made again at the same path: a new directory, opened anew once
        // the last check is older than FRESH.
        fs::remove_file(home.join("a")).unwrap();
        fs::remove_dir(&home).unwrap();
        fs::create_dir(&home).unwrap();
        fs::write(home.join("b"), b"second").unwrap();
        assert!(homes.open(&home).unwrap().shares_root(&one));
        homes.expire();
        let three = homes.open(&home).unwrap();
        assert!(!three.shares_root(&one));
        assert!(three.stat(Path::new("/b")).is_ok());
        assert!(three.stat(Path::new("/a")).is_err());

        // Moved away, another directory put in its place by a link.
        let other = d.join("other");
        fs::create_dir(&other).unwrap();
        fs::write(other.join("c"), b"third").unwrap();
        fs::rename(&home, d.join("moved")).unwrap();
        std::os::unix::fs::symlink(&other, &home).unwrap();
        homes.expire();
        let four = homes.open(&home).unwrap();
        assert!(four.stat(Path::new("/c")).is_ok());

        // Gone: the login fails as before.
        fs::remove_file(&home).unwrap();
        homes.expire();
        assert!(homes.open(&home).is_err());
    }

    /// Logins of many users one after the other leave at most [`MAX_IDLE`] homes open
    /// that no session holds; a home a session holds stays shared.
    #[test]
    fn homes_no_session_holds_are_bounded() {
        let d = TempDir::new("homes-idle");
        let homes = Homes::default();
        let held_path = d.join("held");
        fs::create_dir(&held_path).unwrap();
        let held = homes.open(&held_path).unwrap();
        for i in 0..3 * MAX_IDLE {
            let home = d.join(format!("u{i}"));
            fs::create_dir(&home).unwrap();
            // The session logs in and out: its storage is dropped at once.
            drop(homes.open(&home).unwrap());
        }
        let kept = homes.lock().len();
        assert!(kept <= MAX_IDLE + 1, "{kept} homes kept open");
        assert!(homes.open(&held_path).unwrap().shares_root(&held));
    }
}
