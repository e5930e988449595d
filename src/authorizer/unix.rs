//! [`UnixAuthorizer`]: the machine's own accounts (pyftpdlib's `UnixAuthorizer`). Users come
//! from the passwd database, passwords are checked against the shadow database with crypt(3),
//! and every filesystem operation of a session runs under the user's uid, gid and groups, so
//! files a user uploads belong to that user.
//!
//! Switching ids needs root, so the server keeps root as its real and saved uid and changes
//! only the effective ids, around each command (see docs/security.md for what that means).
//!
//! The switch changes the calling thread only. Linux keeps credentials per thread, but
//! glibc's `seteuid`, `setegid` and `setgroups` apply the change to every thread of the
//! process (POSIX wants process-wide ids); so this module makes the raw system calls
//! (`setresuid`, `setresgid`, `setgroups`), which the kernel applies to the caller alone.
//! Several threads can then work on files at once, each as the user of its own session,
//! while the others stay root. Anything else in the process that calls glibc's wrappers
//! still resets the ids of every thread, impersonating ones included.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};

use super::{crypt, AuthError, Authorizer, AuthorizerError, Perms};

/// The settings of a [`UnixAuthorizer`], pyftpdlib's constructor arguments.
///
/// # Examples
/// ```
/// use ftpdlib::UnixOptions;
/// let opts = UnixOptions::default()
///     .with_rejected_users(vec!["root".to_string()])
///     .with_require_valid_shell(false);
/// assert!(!opts.anonymous);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UnixOptions {
    /// Permissions of every system user; default `"elradfmwMT"` (everything, as pyftpdlib 2.x).
    pub global_perm: Perms,
    /// If not empty, only these users may log in. Excludes `rejected_users`.
    pub allowed_users: Vec<String>,
    /// These users may never log in (`root` is a good start). Excludes `allowed_users`.
    pub rejected_users: Vec<String>,
    /// Refuse users whose login shell is not listed in /etc/shells (so `/bin/false` and
    /// `nologin` accounts stay out); default true. A no-op where /etc/shells is missing.
    /// The anonymous account is not subject to it.
    pub require_valid_shell: bool,
    /// Accept the user `anonymous` (any password); default false.
    pub anonymous: bool,
    /// The system account anonymous sessions run as; default `"nobody"`.
    pub anonymous_user: String,
    /// Home of anonymous sessions; default the anonymous account's home from passwd
    /// (`nobody`'s is `/nonexistent` on Debian, so this is usually set).
    pub anonymous_home: Option<PathBuf>,
    /// Text of the 230 reply; default `"Login successful."`.
    pub msg_login: String,
    /// Text of the 221 reply; default `"Goodbye."`.
    pub msg_quit: String,
}

with_setters!(UnixOptions {
    with_global_perm => global_perm: Perms,
    with_allowed_users => allowed_users: Vec<String>,
    with_rejected_users => rejected_users: Vec<String>,
    with_require_valid_shell => require_valid_shell: bool,
    with_anonymous => anonymous: bool,
});

with_setters!(UnixOptions into {
    with_anonymous_user => anonymous_user: String,
    with_anonymous_home => anonymous_home: Option<PathBuf>,
    with_msg_login => msg_login: String,
    with_msg_quit => msg_quit: String,
});

impl Default for UnixOptions {
    fn default() -> Self {
        UnixOptions {
            global_perm: Perms::ALL,
            allowed_users: Vec::new(),
            rejected_users: Vec::new(),
            require_valid_shell: true,
            anonymous: false,
            anonymous_user: UnixAuthorizer::DEFAULT_ANONYMOUS_USER.to_string(),
            anonymous_home: None,
            msg_login: "Login successful.".to_string(),
            msg_quit: "Goodbye.".to_string(),
        }
    }
}

/// Per-user settings given with [`UnixAuthorizer::override_user`].
#[derive(Debug, Clone, Default)]
struct Override {
    home: Option<PathBuf>,
    perm: Option<Perms>,
}

/// The ids a process or a user runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ids {
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
}

/// An entry of the passwd database.
#[derive(Debug, Clone)]
struct Passwd {
    uid: libc::uid_t,
    gid: libc::gid_t,
    dir: PathBuf,
    shell: String,
}

/// Authenticates the machine's accounts and runs their sessions under their ids.
///
/// # Examples
/// ```no_run
/// use std::sync::Arc;
/// use ftpdlib::authorizer::unix::{UnixAuthorizer, UnixOptions};
/// use ftpdlib::{Config, FtpServer};
///
/// let auth = UnixAuthorizer::new(UnixOptions::default().with_rejected_users(vec!["root".into()]))
///     .expect("needs root");
/// let mut server = FtpServer::bind("0.0.0.0:21", Config::new(Arc::new(auth))).unwrap();
/// server.serve_forever(None, None).unwrap();
/// ```
pub struct UnixAuthorizer {
    opts: UnixOptions,
    overrides: HashMap<String, Override>,
    /// The server's own ids, restored after every command.
    server: Ids,
    /// A hash to check passwords of unknown users against, so a login attempt takes as long
    /// whether or not the account exists.
    decoy: String,
}

impl fmt::Debug for UnixAuthorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixAuthorizer")
            .field("opts", &self.opts)
            .field("overrides", &self.overrides)
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl UnixAuthorizer {
    /// The account anonymous sessions run as unless [`UnixOptions::anonymous_user`] says
    /// otherwise.
    pub const DEFAULT_ANONYMOUS_USER: &'static str = "nobody";

    /// Checks the options against the system and records the server's ids.
    ///
    /// # Errors
    /// Not running as root (reading /etc/shadow and switching ids both need it); both user
    /// lists given; a listed user or the anonymous account missing; an allowed user without
    /// a valid shell; the anonymous home not a directory.
    pub fn new(opts: UnixOptions) -> Result<UnixAuthorizer, AuthorizerError> {
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        if euid != 0 {
            return Err(AuthorizerError::Other(format!(
                "serving system users needs root: it reads /etc/shadow and switches to each \
                 user's ids (running as uid {euid})"
            )));
        }
        if !opts.allowed_users.is_empty() && !opts.rejected_users.is_empty() {
            return Err(AuthorizerError::Other(
                "allowed_users and rejected_users are mutually exclusive".to_string(),
            ));
        }
        for user in opts.allowed_users.iter().chain(&opts.rejected_users) {
            if user == super::DummyAuthorizer::ANONYMOUS {
                return Err(AuthorizerError::Other(
                    "\"anonymous\" is not a system user; use the anonymous option".to_string(),
                ));
            }
            if getpwnam(user).is_none() {
                return Err(AuthorizerError::NoSuchUser(user.clone()));
            }
        }
        if opts.require_valid_shell {
            for user in &opts.allowed_users {
                if !has_valid_shell(user) {
                    return Err(AuthorizerError::Other(format!(
                        "user {user:?} has no valid shell (see /etc/shells)"
                    )));
                }
            }
        }
        if opts.anonymous {
            let pw = getpwnam(&opts.anonymous_user)
                .ok_or_else(|| AuthorizerError::NoSuchUser(opts.anonymous_user.clone()))?;
            let home = opts.anonymous_home.clone().unwrap_or(pw.dir);
            if !home.is_dir() {
                return Err(AuthorizerError::NoHomeDir(home));
            }
        }
        let decoy = crypt::hash_password("", crypt::Method::Yescrypt)
            .map_err(|e| AuthorizerError::Other(e.to_string()))?;
        let server = current_ids().map_err(|e| {
            AuthorizerError::Other(format!("can't read the server's own groups: {e}"))
        })?;
        Ok(UnixAuthorizer {
            opts,
            overrides: HashMap::new(),
            server,
            decoy,
        })
    }

    /// Gives one user (or `"anonymous"`) another home directory and/or other permissions.
    ///
    /// # Errors
    /// An unknown or refused user, a user without a valid shell when one is required, an
    /// unknown permission letter, or a home that is not a directory.
    pub fn override_user(
        &mut self,
        username: &str,
        homedir: Option<&Path>,
        perm: Option<&str>,
    ) -> Result<(), AuthorizerError> {
        let anonymous = username == super::DummyAuthorizer::ANONYMOUS;
        if !anonymous {
            if self.is_rejected(username) {
                return Err(AuthorizerError::Other(format!(
                    "{username:?} is not an allowed user"
                )));
            }
            if getpwnam(username).is_none() {
                return Err(AuthorizerError::NoSuchUser(username.to_string()));
            }
            if self.opts.require_valid_shell && !has_valid_shell(username) {
                return Err(AuthorizerError::Other(format!(
                    "user {username:?} has no valid shell (see /etc/shells)"
                )));
            }
        }
        let perm = perm.map(Perms::parse).transpose()?;
        if anonymous && perm.is_some_and(Perms::has_write) {
            log::warn!(target: crate::logger::LOG, "write permissions assigned to anonymous user");
        }
        if let Some(home) = homedir {
            if !home.is_dir() {
                return Err(AuthorizerError::NoHomeDir(home.to_path_buf()));
            }
        }
        let entry = self.overrides.entry(username.to_string()).or_default();
        if let Some(home) = homedir {
            entry.home = Some(home.to_path_buf());
        }
        if perm.is_some() {
            entry.perm = perm;
        }
        Ok(())
    }

    /// The settings in force.
    pub fn options(&self) -> &UnixOptions {
        &self.opts
    }

    fn is_rejected(&self, username: &str) -> bool {
        (!self.opts.allowed_users.is_empty()
            && !self.opts.allowed_users.iter().any(|u| u == username))
            || self.opts.rejected_users.iter().any(|u| u == username)
    }

    /// The system account a session of `username` runs as.
    fn system_name<'a>(&'a self, username: &'a str) -> &'a str {
        if username == super::DummyAuthorizer::ANONYMOUS {
            &self.opts.anonymous_user
        } else {
            username
        }
    }

    /// Puts the calling thread's effective ids back to the server's; returns the first
    /// failure but tries every step.
    fn restore(&self) -> io::Result<()> {
        // The uid first: only with euid 0 again may the gid and groups change.
        let mut result = set_thread_euid(self.server.uid);
        let gid = set_thread_egid(self.server.gid);
        if result.is_ok() {
            result = gid;
        }
        let groups = set_thread_groups(&self.server.groups);
        if result.is_ok() {
            result = groups;
        }
        result
    }

    /// Switches the calling thread to `ids`; stops at the first failure, leaving whatever
    /// part was done for [`restore`](Self::restore) to undo.
    fn switch_to(&self, ids: &Ids) -> io::Result<()> {
        // Groups and gid before the uid: once the euid is not 0 they can no longer change.
        set_thread_groups(&ids.groups)?;
        set_thread_egid(ids.gid)?;
        set_thread_euid(ids.uid)
    }
}

// The raw system call numbers. The 32-bit architectures whose original calls take 16-bit
// ids have `*32` variants; everywhere else the plain calls already take 32-bit ids.
#[cfg(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc"))]
const SYS_SETRESUID: libc::c_long = libc::SYS_setresuid32;
#[cfg(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc"))]
const SYS_SETRESGID: libc::c_long = libc::SYS_setresgid32;
#[cfg(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc"))]
const SYS_SETGROUPS: libc::c_long = libc::SYS_setgroups32;
#[cfg(not(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc")))]
const SYS_SETRESUID: libc::c_long = libc::SYS_setresuid;
#[cfg(not(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc")))]
const SYS_SETRESGID: libc::c_long = libc::SYS_setresgid;
#[cfg(not(any(target_arch = "x86", target_arch = "arm", target_arch = "sparc")))]
const SYS_SETGROUPS: libc::c_long = libc::SYS_setgroups;

/// An id argument that leaves the id as it is (the kernel's `(uid_t) -1`).
const KEEP: libc::uid_t = libc::uid_t::MAX;

/// Sets the effective uid of the calling thread only (`setresuid(-1, uid, -1)`), unlike
/// glibc's `seteuid`, which sets it in every thread.
fn set_thread_euid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setresuid takes three integers and touches no memory of ours; ids are passed
    // as unsigned 32-bit values, as the kernel reads them.
    let rc = unsafe { libc::syscall(SYS_SETRESUID, KEEP, uid, KEEP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the effective gid of the calling thread only (`setresgid(-1, gid, -1)`).
fn set_thread_egid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: as in set_thread_euid.
    let rc = unsafe { libc::syscall(SYS_SETRESGID, KEEP, gid, KEEP) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets the supplementary groups of the calling thread only. Needs CAP_SETGID (root), even
/// to set the list it already has.
fn set_thread_groups(groups: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: the pointer and length describe `groups`, alive for the call; the kernel
    // only reads from it.
    let rc = unsafe { libc::syscall(SYS_SETGROUPS, groups.len(), groups.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Authorizer for UnixAuthorizer {
    fn validate_authentication(&self, username: &str, password: &str) -> Result<(), AuthError> {
        if username == super::DummyAuthorizer::ANONYMOUS {
            return if self.opts.anonymous {
                Ok(())
            } else {
                Err(AuthError::Refused(
                    "Anonymous access not allowed.".to_string(),
                ))
            };
        }
        if self.is_rejected(username) {
            return Err(AuthError::Refused(format!(
                "User {username} is not allowed to login."
            )));
        }
        match getspnam(username) {
            Some(sp) if sp.usable() => {
                if !crypt::verify(password, &sp.hash) {
                    return Err(AuthError::BadCredentials);
                }
            }
            // No such user, a locked account ("!", "*") or no password at all: spend the
            // time a real check takes, then fail the same way.
            _ => {
                let _ = crypt::verify(password, &self.decoy);
                return Err(AuthError::BadCredentials);
            }
        }
        if self.opts.require_valid_shell && !has_valid_shell(username) {
            return Err(AuthError::Refused(format!(
                "User {username} doesn't have a valid shell."
            )));
        }
        Ok(())
    }

    fn has_user(&self, username: &str) -> bool {
        if username == super::DummyAuthorizer::ANONYMOUS {
            return self.opts.anonymous;
        }
        !self.is_rejected(username) && getpwnam(username).is_some()
    }

    fn home_dir(&self, username: &str) -> Option<PathBuf> {
        if let Some(home) = self.overrides.get(username).and_then(|o| o.home.clone()) {
            return Some(home);
        }
        if username == super::DummyAuthorizer::ANONYMOUS {
            if !self.opts.anonymous {
                return None;
            }
            if let Some(home) = &self.opts.anonymous_home {
                return Some(home.clone());
            }
        }
        getpwnam(self.system_name(username)).map(|pw| pw.dir)
    }

    fn has_perm(&self, username: &str, perm: Perms, _path: &Path) -> bool {
        self.perms(username).contains(perm)
    }

    fn perms(&self, username: &str) -> Perms {
        if let Some(p) = self.overrides.get(username).and_then(|o| o.perm) {
            return p;
        }
        if username == super::DummyAuthorizer::ANONYMOUS {
            Perms::READ_ONLY
        } else {
            self.opts.global_perm
        }
    }

    fn msg_login(&self, _username: &str) -> String {
        self.opts.msg_login.clone()
    }

    fn msg_quit(&self, _username: &str) -> String {
        self.opts.msg_quit.clone()
    }

    fn impersonate_user(&self, username: &str) -> Result<(), AuthError> {
        let name = self.system_name(username);
        let pw = getpwnam(name)
            .ok_or_else(|| AuthError::Refused(format!("no such system user {name}")))?;
        let groups = user_groups(name, pw.gid)
            .map_err(|e| AuthError::Refused(format!("groups of {name}: {e}")))?;
        let ids = Ids {
            uid: pw.uid,
            gid: pw.gid,
            groups,
        };
        if let Err(e) = self.switch_to(&ids) {
            // Half switched is the worst state: go back before reporting.
            let _ = self.restore();
            return Err(AuthError::Refused(format!("can't switch to {name}: {e}")));
        }
        Ok(())
    }

    fn terminate_impersonation(&self, _username: &str) -> Result<(), AuthError> {
        // Idempotent: it restores the server's ids whatever the current ones are.
        self.restore()
            .map_err(|e| AuthError::Refused(format!("can't restore the server's ids: {e}")))
    }
}

/// Converts a C string from a database entry.
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
unsafe fn owned(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Calls a `get*_r` function with a growing buffer until it fits; `f` returns the C error
/// number and whether an entry was found.
fn with_buffer<T>(mut f: impl FnMut(&mut [c_char]) -> (libc::c_int, Option<T>)) -> Option<T> {
    let mut size = 4096;
    loop {
        let mut buf = vec![0 as c_char; size];
        match f(&mut buf) {
            (libc::ERANGE, _) if size < 1 << 20 => size *= 4,
            (0, found) => return found,
            _ => return None,
        }
    }
}

/// Looks a user up in the passwd database (getpwnam_r).
fn getpwnam(name: &str) -> Option<Passwd> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid value to overwrite.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's size;
        // the strings in `pwd` point into `buf`, read before it is dropped.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return (rc, None);
        }
        // SAFETY: on success the fields point to NUL-terminated strings in `buf`.
        let (dir, shell) = unsafe { (owned(pwd.pw_dir), owned(pwd.pw_shell)) };
        (
            0,
            Some(Passwd {
                uid: pwd.pw_uid,
                gid: pwd.pw_gid,
                dir: PathBuf::from(dir),
                shell,
            }),
        )
    })
}

/// The parts of a shadow entry a login needs.
struct Shadow {
    hash: String,
    /// The day (since the epoch) from which the account is expired; 0 or -1 for never.
    expire: i64,
}

impl Shadow {
    /// Whether the entry holds a password one can log in with: not locked (`!`, `*`), not
    /// empty, not expired.
    fn usable(&self) -> bool {
        if self.hash.is_empty() || self.hash.starts_with('!') || self.hash.starts_with('*') {
            return false;
        }
        // As the shadow tools read it: 0 and -1 both mean "never expires".
        if self.expire > 0 {
            let today = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() / 86400);
            if today as i64 >= self.expire {
                return false;
            }
        }
        true
    }
}

/// Reads a user's shadow entry (getspnam_r); needs root.
fn getspnam(name: &str) -> Option<Shadow> {
    let cname = CString::new(name).ok()?;
    with_buffer(|buf| {
        // SAFETY: an all-zero spwd is a valid value to overwrite.
        let mut sp: libc::spwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::spwd = std::ptr::null_mut();
        // SAFETY: as in getpwnam.
        let rc = unsafe {
            libc::getspnam_r(
                cname.as_ptr(),
                &mut sp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 || result.is_null() {
            return (rc, None);
        }
        // SAFETY: on success sp_pwdp points to a NUL-terminated string in `buf`.
        let hash = unsafe { owned(sp.sp_pwdp) };
        // The copy of the hash in `buf` goes with the buffer; wipe it first.
        buf.fill(0);
        (
            0,
            Some(Shadow {
                hash,
                expire: sp.sp_expire as i64,
            }),
        )
    })
}

/// The groups a user belongs to, primary group included (getgrouplist).
fn user_groups(name: &str, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let cname = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    let mut n: libc::c_int = 32;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let mut count = n;
        // SAFETY: `groups` has room for `count` entries; getgrouplist writes at most that
        // many and stores the needed count back into `count`.
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(count.max(0) as usize);
            return Ok(groups);
        }
        if count <= n || count > 65536 {
            return Err(io::Error::other("getgrouplist failed"));
        }
        n = count;
    }
}

/// The calling thread's effective ids and supplementary groups.
fn current_ids() -> io::Result<Ids> {
    // SAFETY: a call with size 0 only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut groups = vec![0 as libc::gid_t; n as usize];
    // SAFETY: `groups` has room for `n` entries.
    let n = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    groups.truncate(n as usize);
    // SAFETY: these cannot fail.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    Ok(Ids { uid, gid, groups })
}

/// Whether the user's login shell is listed in /etc/shells; true if that file is missing.
pub fn has_valid_shell(username: &str) -> bool {
    let shells = match std::fs::read_to_string("/etc/shells") {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return true,
        Err(_) => return false,
    };
    let Some(pw) = getpwnam(username) else {
        return false;
    };
    shells
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(|l| l == pw.shell)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookups() {
        let root = getpwnam("root").expect("root is in every passwd");
        assert_eq!(root.uid, 0);
        assert!(getpwnam("no-such-user-ftpdlib").is_none());
        assert!(getpwnam("a\0b").is_none());
        let groups = user_groups("root", 0).unwrap();
        assert!(groups.contains(&0));
    }

    #[test]
    fn thread_id_calls_to_the_current_ids_change_nothing() {
        // Runs as any user: setting the ids a thread already has needs no privilege (the
        // group list excepted, which always needs CAP_SETGID).
        let before = current_ids().unwrap();
        set_thread_egid(before.gid).unwrap();
        set_thread_euid(before.uid).unwrap();
        match set_thread_groups(&before.groups) {
            Ok(()) => assert_eq!(before.uid, 0, "only root may set the group list"),
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::PermissionDenied, "{e}"),
        }
        assert_eq!(current_ids().unwrap(), before);
    }

    #[test]
    fn shadow_entry_rules() {
        let s = |hash: &str, expire| Shadow {
            hash: hash.to_string(),
            expire,
        };
        assert!(s("$6$x$y", -1).usable());
        assert!(s("$6$x$y", 0).usable());
        assert!(!s("!$6$x$y", -1).usable());
        assert!(!s("*", -1).usable());
        assert!(!s("", -1).usable());
        assert!(!s("$6$x$y", 1).usable(), "expired in 1970");
        assert!(s("$6$x$y", 1 << 30).usable());
    }
}
