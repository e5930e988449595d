//! Who may log in and what they may do: the [`Authorizer`] trait, [`Perms`] and
//! [`DummyAuthorizer`], the table of virtual users (pyftpdlib's `authorizers.py`).
//! [`crypt`] checks and makes password hashes with the system's crypt(3); [`unix`] holds
//! [`UnixAuthorizer`](unix::UnixAuthorizer), for the machine's own accounts.
//!
//! Permission letters, as in pyftpdlib:
//!
//! | letter | allows | commands |
//! |---|---|---|
//! | `e` | change directory | CWD, CDUP |
//! | `l` | list files | LIST, NLST, STAT, MLSD, MLST, SIZE, MDTM |
//! | `r` | retrieve files | RETR |
//! | `a` | append to files | APPE |
//! | `d` | delete files and directories | DELE, RMD |
//! | `f` | rename | RNFR, RNTO |
//! | `m` | make directories | MKD |
//! | `w` | store files | STOR, STOU |
//! | `M` | change file mode | SITE CHMOD |
//! | `T` | change file modification time | MFMT |

pub mod crypt;
mod identity;
pub mod unix;

pub(crate) use identity::{Identity, SwitchError};

use std::collections::HashMap;
use std::fmt;
use std::ops::BitOr;
use std::path::{Path, PathBuf};

/// A set of permission letters (`"elradfmwMT"`), built like mio's `Interest`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Perms(u16);

impl Perms {
    /// `e`: change directory.
    pub const CWD: Perms = Perms(1 << 0);
    /// `l`: list files.
    pub const LIST: Perms = Perms(1 << 1);
    /// `r`: retrieve files.
    pub const RETR: Perms = Perms(1 << 2);
    /// `a`: append to files.
    pub const APPEND: Perms = Perms(1 << 3);
    /// `d`: delete files and directories.
    pub const DELETE: Perms = Perms(1 << 4);
    /// `f`: rename files and directories.
    pub const RENAME: Perms = Perms(1 << 5);
    /// `m`: make directories.
    pub const MKDIR: Perms = Perms(1 << 6);
    /// `w`: store files.
    pub const STORE: Perms = Perms(1 << 7);
    /// `M`: change file mode (SITE CHMOD).
    pub const CHMOD: Perms = Perms(1 << 8);
    /// `T`: change modification time (MFMT).
    pub const MFMT: Perms = Perms(1 << 9);
    /// No permission at all.
    pub const NONE: Perms = Perms(0);

    /// Letters in canonical order, each with its flag.
    pub const LETTERS: [(char, Perms); 10] = [
        ('e', Perms::CWD),
        ('l', Perms::LIST),
        ('r', Perms::RETR),
        ('a', Perms::APPEND),
        ('d', Perms::DELETE),
        ('f', Perms::RENAME),
        ('m', Perms::MKDIR),
        ('w', Perms::STORE),
        ('M', Perms::CHMOD),
        ('T', Perms::MFMT),
    ];

    /// The read-only set `"elr"`, the default for new users.
    pub const READ_ONLY: Perms = Perms(Perms::CWD.0 | Perms::LIST.0 | Perms::RETR.0);

    /// Every write permission: `"adfmwMT"`.
    pub const WRITE: Perms = Perms(
        Perms::APPEND.0
            | Perms::DELETE.0
            | Perms::RENAME.0
            | Perms::MKDIR.0
            | Perms::STORE.0
            | Perms::CHMOD.0
            | Perms::MFMT.0,
    );

    /// Every permission: `"elradfmwMT"`.
    pub const ALL: Perms = Perms(Perms::READ_ONLY.0 | Perms::WRITE.0);

    /// Parses a string of permission letters.
    ///
    /// # Errors
    /// [`AuthorizerError::UnknownPerm`] for a letter outside `"elradfmwMT"`.
    pub fn parse(letters: &str) -> Result<Perms, AuthorizerError> {
        let mut perms = Perms::NONE;
        for c in letters.chars() {
            match Perms::LETTERS.iter().find(|(l, _)| *l == c) {
                Some((_, p)) => perms = perms | *p,
                None => return Err(AuthorizerError::UnknownPerm(c)),
            }
        }
        Ok(perms)
    }

    /// Whether every flag of `other` is in `self`.
    pub fn contains(self, other: Perms) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any write permission is present.
    pub fn has_write(self) -> bool {
        self.0 & Perms::WRITE.0 != 0
    }
}

impl BitOr for Perms {
    type Output = Perms;
    fn bitor(self, rhs: Perms) -> Perms {
        Perms(self.0 | rhs.0)
    }
}

impl fmt::Display for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (c, p) in Perms::LETTERS {
            if self.contains(p) {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Perms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Perms(\"{self}\")")
    }
}

/// Errors from setting up an authorizer (pyftpdlib's `AuthorizerError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizerError {
    /// A permission letter outside `"elradfmwMT"`.
    UnknownPerm(char),
    /// The user is already in the table.
    DuplicateUser(String),
    /// The user is not in the table.
    NoSuchUser(String),
    /// The home directory does not exist or is not a directory.
    NoHomeDir(PathBuf),
    /// An overridden directory lies outside the user's home.
    OutsideHome(PathBuf),
    /// A password given as a hash is not a crypt(3) hash this system supports.
    NotAHash(String),
    /// Anything an authorizer implementation wants to report.
    Other(String),
}

impl fmt::Display for AuthorizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthorizerError::UnknownPerm(c) => write!(f, "no such permission {c:?}"),
            AuthorizerError::DuplicateUser(u) => write!(f, "user {u:?} already exists"),
            AuthorizerError::NoSuchUser(u) => write!(f, "no such user {u:?}"),
            AuthorizerError::NoHomeDir(p) => write!(f, "no such directory: {}", p.display()),
            AuthorizerError::OutsideHome(p) => {
                write!(f, "{} is not inside the user's home directory", p.display())
            }
            AuthorizerError::NotAHash(u) => write!(
                f,
                "the password of {u:?} is not a crypt(3) hash this system supports"
            ),
            AuthorizerError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for AuthorizerError {}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password; the client sees only "530 Authentication failed."
    BadCredentials,
    /// The account exists but may not log in; the text goes to the client with a 530.
    Refused(String),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::BadCredentials => f.write_str("Authentication failed."),
            AuthError::Refused(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for AuthError {}

/// The answer to a password check started with [`Authorizer::start_authentication`]: give
/// it once with [`send`](Self::send), from any thread, at once or later.
///
/// Dropped without an answer (the authorizer panicked or gave up), the client gets
/// "451 Requested action aborted: local error in processing." and may try again.
pub struct AuthReply(Box<dyn FnOnce(Result<(), AuthError>) + Send>);

impl AuthReply {
    /// A reply that hands the answer to `f` (the server makes these; a test of your own
    /// authorizer can too).
    pub fn new(f: impl FnOnce(Result<(), AuthError>) + Send + 'static) -> AuthReply {
        AuthReply(Box::new(f))
    }

    /// Gives the answer: `Ok(())` logs the user in, an error is answered 530.
    pub fn send(self, result: Result<(), AuthError>) {
        (self.0)(result)
    }
}

impl fmt::Debug for AuthReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthReply")
    }
}

/// Authentication and authorisation, consulted by every session.
///
/// Implement it to plug in your own user database; [`DummyAuthorizer`] is the in-memory
/// table. Paths given to [`has_perm`](Authorizer::has_perm) are real filesystem paths that
/// have already been checked to lie inside the user's home.
pub trait Authorizer: Send + Sync {
    /// Checks a user name and password. The anonymous user accepts any password.
    ///
    /// It runs on one of the server's worker threads, never on the reactor thread (unless
    /// [`is_inline`](Self::is_inline) says so), so it may take its time (a crypt(3) hash,
    /// a database query); while it runs, that worker does nothing else. An authorizer that
    /// waits on the network should rather implement
    /// [`start_authentication`](Self::start_authentication).
    fn validate_authentication(&self, username: &str, password: &str) -> Result<(), AuthError>;

    /// Whether the password check of `username` is cheap enough to make on the reactor
    /// thread: a comparison with a password held in memory, no hash, no I/O, no lock
    /// another thread may hold for long. Such a login skips the worker pool's round trip
    /// (two thread switches) when its home is already open
    /// ([`Config::filesystem`](crate::Config::filesystem) left at its default); a wrong
    /// password is refused on the reactor thread whether the home is open or not, and a
    /// right one then only has its home opened on a worker.
    ///
    /// Default false. Answer true only where
    /// [`validate_authentication`](Self::validate_authentication) returns at once and
    /// [`start_authentication`](Self::start_authentication) is not overridden to answer
    /// later. Answer the same for users that don't exist as for users with a plain
    /// password, or the time of a login tells an attacker which names exist.
    fn is_inline(&self, _username: &str) -> bool {
        false
    }

    /// Starts a password check whose answer may come later, from any thread, through
    /// `reply`: an authorizer with a client of its own (LDAP, a database, an HTTP service)
    /// sends the request, keeps `reply` with it and returns at once, freeing the worker.
    /// The session waits for the answer, reading no further command: a QUIT or ABOR sent
    /// meanwhile is answered after it, and the idle timeout (`Config::timeout`) ends a
    /// session whose answer never comes. After a successful answer the home directory and the
    /// user's storage are set up on the thread that sent it.
    ///
    /// Called on a worker thread. The default answers at once with
    /// [`validate_authentication`](Self::validate_authentication).
    fn start_authentication(&self, username: &str, password: &str, reply: AuthReply) {
        reply.send(self.validate_authentication(username, password));
    }

    /// Whether the user exists.
    fn has_user(&self, username: &str) -> bool;

    /// The user's home directory, the root of their filesystem view.
    #[doc(alias = "get_home_dir")]
    fn home_dir(&self, username: &str) -> Option<PathBuf>;

    /// Whether `username` holds `perm` on the real path `path`, taking
    /// [`DummyAuthorizer::override_perm`]-style overrides into account.
    fn has_perm(&self, username: &str, perm: Perms, path: &Path) -> bool;

    /// The user's base permissions.
    #[doc(alias = "get_perms")]
    fn perms(&self, username: &str) -> Perms;

    /// Text of the 230 reply after a successful login; may hold several lines.
    #[doc(alias = "get_msg_login")]
    fn msg_login(&self, _username: &str) -> String {
        "Login successful.".to_string()
    }

    /// Text of the 221 reply to QUIT; may hold several lines.
    #[doc(alias = "get_msg_quit")]
    fn msg_quit(&self, _username: &str) -> String {
        "Goodbye.".to_string()
    }

    /// Called before every filesystem access of the user's session, on the worker thread
    /// that makes it; not for a storage that answers on the reactor thread
    /// ([`Filesystem::is_inline`](crate::Filesystem::is_inline)). Does nothing by default;
    /// an authorizer for system users switches effective ids here.
    ///
    /// Unlike pyftpdlib it is not handed the password: sessions do not keep it.
    fn impersonate_user(&self, _username: &str) -> Result<(), AuthError> {
        Ok(())
    }

    /// Called after every filesystem access; undoes [`impersonate_user`](Self::impersonate_user).
    fn terminate_impersonation(&self, _username: &str) -> Result<(), AuthError> {
        Ok(())
    }
}

/// How a [`DummyAuthorizer`] account's password is stored.
#[derive(Clone)]
enum Secret {
    /// Compared as it is, in constant time.
    Plain(String),
    /// A crypt(3) hash, checked with [`crypt::verify`].
    Hash(String),
}

impl Secret {
    fn as_str(&self) -> &str {
        match self {
            Secret::Plain(s) | Secret::Hash(s) => s,
        }
    }

    fn matches(&self, password: &str) -> bool {
        match self {
            Secret::Plain(s) => constant_time_eq(s.as_bytes(), password.as_bytes()),
            Secret::Hash(h) => crypt::verify(password, h),
        }
    }
}

impl fmt::Debug for Secret {
    // Never print a password, not even in a debug dump of the authorizer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Plain(_) => f.write_str("Plain(******)"),
            Secret::Hash(_) => f.write_str("Hash(******)"),
        }
    }
}

/// One account of a [`DummyAuthorizer`].
#[derive(Debug, Clone)]
struct User {
    password: Secret,
    home: PathBuf,
    perms: Perms,
    /// `(directory, perms, recursive)`, directories canonical.
    overrides: Vec<(PathBuf, Perms, bool)>,
    msg_login: String,
    msg_quit: String,
}

/// The in-memory table of virtual users (pyftpdlib's `DummyAuthorizer`).
///
/// Passwords are kept as given ([`add_user`](Self::add_user)) or as crypt(3) hashes
/// ([`add_user_hashed`](Self::add_user_hashed), made by `ftpdlib hash-password`), user by
/// user.
///
/// # Examples
/// ```
/// use ftpdlib::{Authorizer, DummyAuthorizer, Perms};
/// let dir = std::env::temp_dir();
/// let mut auth = DummyAuthorizer::new();
/// auth.add_user("user", "12345", &dir, "elradfmw").unwrap();
/// auth.add_anonymous(&dir, "elr").unwrap();
/// assert!(auth.has_user("anonymous"));
/// assert!(auth.perms("user").contains(Perms::STORE));
/// ```
#[derive(Debug, Clone, Default)]
pub struct DummyAuthorizer {
    users: HashMap<String, User>,
    /// Homes are places in a storage other than the disk: taken as given.
    homes_elsewhere: bool,
}

impl DummyAuthorizer {
    /// The name the anonymous account is stored under.
    pub const ANONYMOUS: &'static str = "anonymous";

    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Homes (and [`override_perm`](Self::override_perm) directories) name places in a
    /// storage other than the local disk: a [`MemoryStore`](crate::MemoryStore) or an
    /// object store, where `/alice` is a prefix. They are then taken as given, made
    /// absolute and normalised without touching the disk (`alice` and `/x/../alice` are
    /// `/alice`), instead of having to be directories here. Call it before adding users.
    pub fn homes_elsewhere(mut self) -> Self {
        self.homes_elsewhere = true;
        self
    }

    /// A home or directory as the table keeps it: canonical on the disk, or normalised
    /// (see [`homes_elsewhere`](Self::homes_elsewhere)).
    fn place(&self, dir: &Path) -> Result<PathBuf, AuthorizerError> {
        if self.homes_elsewhere {
            use std::os::unix::ffi::{OsStrExt, OsStringExt};
            let norm = crate::filesystem::ftpnorm(b"/", dir.as_os_str().as_bytes());
            return Ok(PathBuf::from(std::ffi::OsString::from_vec(norm)));
        }
        if !dir.is_dir() {
            return Err(AuthorizerError::NoHomeDir(dir.to_path_buf()));
        }
        dir.canonicalize()
            .map_err(|_| AuthorizerError::NoHomeDir(dir.to_path_buf()))
    }

    /// Adds a user with the default login and quit messages.
    ///
    /// # Errors
    /// An unknown permission letter, a duplicate user or a home that is not a directory.
    pub fn add_user(
        &mut self,
        username: &str,
        password: &str,
        homedir: impl AsRef<Path>,
        perm: &str,
    ) -> Result<(), AuthorizerError> {
        self.add_user_with_messages(
            username,
            password,
            homedir,
            perm,
            "Login successful.",
            "Goodbye.",
        )
    }

    /// Adds a user with custom 230 and 221 texts (`msg_login`, `msg_quit`).
    ///
    /// # Errors
    /// As [`add_user`](Self::add_user).
    pub fn add_user_with_messages(
        &mut self,
        username: &str,
        password: &str,
        homedir: impl AsRef<Path>,
        perm: &str,
        msg_login: &str,
        msg_quit: &str,
    ) -> Result<(), AuthorizerError> {
        self.insert(
            username,
            Secret::Plain(password.to_string()),
            homedir.as_ref(),
            perm,
            msg_login,
            msg_quit,
        )
    }

    /// Adds a user whose password is stored as a crypt(3) hash (`$y$...` yescrypt,
    /// `$6$...` sha512-crypt, or any other method the system's libcrypt knows), as
    /// `ftpdlib hash-password` prints it or /etc/shadow holds it.
    ///
    /// # Errors
    /// [`AuthorizerError::NotAHash`] if `hash` is not such a hash; otherwise as
    /// [`add_user`](Self::add_user).
    ///
    /// # Examples
    /// ```
    /// use ftpdlib::{Authorizer, DummyAuthorizer};
    /// use ftpdlib::authorizer::crypt::{hash_password, Method};
    /// let hash = hash_password("12345", Method::Sha512).unwrap();
    /// let mut auth = DummyAuthorizer::new();
    /// auth.add_user_hashed("user", &hash, std::env::temp_dir(), "elr").unwrap();
    /// assert!(auth.validate_authentication("user", "12345").is_ok());
    /// assert!(auth.validate_authentication("user", &hash).is_err());
    /// ```
    pub fn add_user_hashed(
        &mut self,
        username: &str,
        hash: &str,
        homedir: impl AsRef<Path>,
        perm: &str,
    ) -> Result<(), AuthorizerError> {
        if !crypt::is_hash(hash) {
            return Err(AuthorizerError::NotAHash(username.to_string()));
        }
        self.insert(
            username,
            Secret::Hash(hash.to_string()),
            homedir.as_ref(),
            perm,
            "Login successful.",
            "Goodbye.",
        )
    }

    fn insert(
        &mut self,
        username: &str,
        password: Secret,
        home: &Path,
        perm: &str,
        msg_login: &str,
        msg_quit: &str,
    ) -> Result<(), AuthorizerError> {
        let perms = Perms::parse(perm)?;
        if self.users.contains_key(username) {
            return Err(AuthorizerError::DuplicateUser(username.to_string()));
        }
        let home = self.place(home)?;
        if username == Self::ANONYMOUS && perms.has_write() {
            log::warn!(target: crate::logger::LOG, "write permissions assigned to anonymous user");
        }
        self.users.insert(
            username.to_string(),
            User {
                password,
                home,
                perms,
                overrides: Vec::new(),
                msg_login: msg_login.to_string(),
                msg_quit: msg_quit.to_string(),
            },
        );
        Ok(())
    }

    /// Adds the anonymous user (`perm` usually `"elr"`); any password is accepted for it.
    /// Write permissions are allowed but logged as a warning.
    ///
    /// # Errors
    /// As [`add_user`](Self::add_user).
    pub fn add_anonymous(
        &mut self,
        homedir: impl AsRef<Path>,
        perm: &str,
    ) -> Result<(), AuthorizerError> {
        self.add_user(Self::ANONYMOUS, "", homedir, perm)
    }

    /// Removes a user; returns whether it existed.
    pub fn remove_user(&mut self, username: &str) -> bool {
        self.users.remove(username).is_some()
    }

    /// Gives `username` other permissions in `directory` (and, with `recursive`, below it).
    /// Without `recursive` the override covers the directory and the files directly in it.
    ///
    /// # Errors
    /// An unknown user or letter, or a directory outside the user's home.
    pub fn override_perm(
        &mut self,
        username: &str,
        directory: impl AsRef<Path>,
        perm: &str,
        recursive: bool,
    ) -> Result<(), AuthorizerError> {
        let perms = Perms::parse(perm)?;
        let dir = self.place(directory.as_ref())?;
        let user = self
            .users
            .get_mut(username)
            .ok_or_else(|| AuthorizerError::NoSuchUser(username.to_string()))?;
        if !dir.starts_with(&user.home) {
            return Err(AuthorizerError::OutsideHome(dir));
        }
        if username == Self::ANONYMOUS && perms.has_write() {
            log::warn!(target: crate::logger::LOG, "write permissions assigned to anonymous user");
        }
        user.overrides.retain(|(d, _, _)| *d != dir);
        user.overrides.push((dir, perms, recursive));
        Ok(())
    }

    /// Sets the 230 text for a user.
    pub fn set_msg_login(&mut self, username: &str, msg: &str) {
        if let Some(u) = self.users.get_mut(username) {
            u.msg_login = msg.to_string();
        }
    }

    /// Sets the 221 text for a user.
    pub fn set_msg_quit(&mut self, username: &str, msg: &str) {
        if let Some(u) = self.users.get_mut(username) {
            u.msg_quit = msg.to_string();
        }
    }

    /// The stored password (or hash) of a user, for authorizers that wrap this one.
    pub fn password(&self, username: &str) -> Option<&str> {
        self.users.get(username).map(|u| u.password.as_str())
    }

    /// Whether the user's password is stored as a crypt(3) hash.
    pub fn is_hashed(&self, username: &str) -> bool {
        self.users
            .get(username)
            .is_some_and(|u| matches!(u.password, Secret::Hash(_)))
    }
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, x) in a.iter().enumerate() {
        // Compare against the other string cyclically so the loop length depends only on `a`.
        let y = if b.is_empty() { 0 } else { b[i % b.len()] };
        diff |= x ^ y;
    }
    diff == 0
}

impl Authorizer for DummyAuthorizer {
    fn validate_authentication(&self, username: &str, password: &str) -> Result<(), AuthError> {
        match self.users.get(username) {
            Some(_) if username == Self::ANONYMOUS => Ok(()),
            Some(u) if u.password.matches(password) => Ok(()),
            _ => Err(AuthError::BadCredentials),
        }
    }

    /// Plain passwords, the anonymous user and unknown names are checked on the reactor
    /// thread; crypt(3) hashes ([`add_user_hashed`](Self::add_user_hashed)) on a worker.
    fn is_inline(&self, username: &str) -> bool {
        !matches!(
            self.users.get(username),
            Some(User {
                password: Secret::Hash(_),
                ..
            })
        ) || username == Self::ANONYMOUS
    }

    fn has_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    fn home_dir(&self, username: &str) -> Option<PathBuf> {
        self.users.get(username).map(|u| u.home.clone())
    }

    fn has_perm(&self, username: &str, perm: Perms, path: &Path) -> bool {
        let Some(user) = self.users.get(username) else {
            return false;
        };
        // The most specific override that covers the path wins.
        let mut best: Option<(&PathBuf, Perms)> = None;
        for (dir, perms, recursive) in &user.overrides {
            let covers = path == dir
                || (*recursive && path.starts_with(dir))
                || (path.parent() == Some(dir.as_path()) && !path.is_dir());
            if covers && best.is_none_or(|(b, _)| dir.as_os_str().len() > b.as_os_str().len()) {
                best = Some((dir, *perms));
            }
        }
        best.map_or(user.perms, |(_, p)| p).contains(perm)
    }

    fn perms(&self, username: &str) -> Perms {
        self.users.get(username).map_or(Perms::NONE, |u| u.perms)
    }

    fn msg_login(&self, username: &str) -> String {
        self.users
            .get(username)
            .map_or_else(|| "Login successful.".to_string(), |u| u.msg_login.clone())
    }

    fn msg_quit(&self, username: &str) -> String {
        self.users
            .get(username)
            .map_or_else(|| "Goodbye.".to_string(), |u| u.msg_quit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::TempDir;

    fn tmpdir(name: &str) -> TempDir {
        let d = TempDir::new(&format!("auth-{name}"));
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        std::fs::write(d.join("sub/file"), b"x").unwrap();
        d
    }

    #[test]
    fn perms_parse_and_display() {
        let p = Perms::parse("elradfmwMT").unwrap();
        assert_eq!(p, Perms::ALL);
        assert_eq!(p.to_string(), "elradfmwMT");
        assert_eq!(Perms::parse("elr").unwrap(), Perms::READ_ONLY);
        assert_eq!(Perms::parse("elrx"), Err(AuthorizerError::UnknownPerm('x')));
        assert!(!Perms::READ_ONLY.has_write());
    }

    #[test]
    fn users_and_errors() {
        let d = tmpdir("users");
        let mut a = DummyAuthorizer::new();
        a.add_user("u", "pw", &d, "elr").unwrap();
        assert_eq!(
            a.add_user("u", "pw", &d, "elr"),
            Err(AuthorizerError::DuplicateUser("u".into()))
        );
        assert!(matches!(
            a.add_user("v", "pw", d.join("nope"), "elr"),
            Err(AuthorizerError::NoHomeDir(_))
        ));
        assert!(matches!(
            a.add_user("v", "pw", &d, "elrZ"),
            Err(AuthorizerError::UnknownPerm('Z'))
        ));
        assert!(a.validate_authentication("u", "pw").is_ok());
        assert_eq!(
            a.validate_authentication("u", "pW"),
            Err(AuthError::BadCredentials)
        );
        assert_eq!(
            a.validate_authentication("nobody", ""),
            Err(AuthError::BadCredentials)
        );
        a.add_anonymous(&d, "elr").unwrap();
        assert!(a.validate_authentication("anonymous", "whatever@").is_ok());
        assert_eq!(a.home_dir("u"), Some(d.to_path_buf()));
        assert!(a.remove_user("u"));
        assert!(!a.has_user("u"));
        assert!(!a.remove_user("u"));
    }

    #[test]
    fn homes_elsewhere_are_taken_as_given_and_normalised() {
        let mut a = DummyAuthorizer::new().homes_elsewhere();
        a.add_user("alice", "pw", Path::new("alice"), "elr")
            .unwrap();
        a.add_user("bob", "pw", Path::new("/x/../bob//files/"), "elr")
            .unwrap();
        assert_eq!(a.home_dir("alice"), Some(PathBuf::from("/alice")));
        assert_eq!(a.home_dir("bob"), Some(PathBuf::from("/bob/files")));
        a.override_perm("bob", "/bob/files/pub", "elradfmw", true)
            .unwrap();
        assert!(a.has_perm("bob", Perms::STORE, Path::new("/bob/files/pub/x")));
        assert!(!a.has_perm("bob", Perms::STORE, Path::new("/bob/files/x")));
        // On the disk, a home that is not a directory here is still refused.
        let mut disk = DummyAuthorizer::new();
        assert!(matches!(
            disk.add_user("alice", "pw", Path::new("/no/such/home"), "elr"),
            Err(AuthorizerError::NoHomeDir(_))
        ));
    }

    #[test]
    fn override_perm_scopes() {
        let d = tmpdir("override");
        let mut a = DummyAuthorizer::new();
        a.add_user("u", "pw", &d, "elr").unwrap();
        a.override_perm("u", d.join("sub"), "elrw", false).unwrap();
        assert!(!a.has_perm("u", Perms::STORE, &d.join("x")));
        assert!(a.has_perm("u", Perms::STORE, &d.join("sub")));
        assert!(a.has_perm("u", Perms::STORE, &d.join("sub/file")));
        assert!(!a.has_perm("u", Perms::STORE, &d.join("sub/deeper")));
        assert!(!a.has_perm("u", Perms::STORE, &d.join("sub/deeper/f")));
        a.override_perm("u", d.join("sub"), "elrw", true).unwrap();
        assert!(a.has_perm("u", Perms::STORE, &d.join("sub/deeper/f")));
        a.override_perm("u", d.join("sub/deeper"), "el", true)
            .unwrap();
        assert!(!a.has_perm("u", Perms::STORE, &d.join("sub/deeper/f")));
        assert!(matches!(
            a.override_perm("u", "/", "elr", false),
            Err(AuthorizerError::OutsideHome(_))
        ));
        assert!(matches!(
            a.override_perm("zz", &d, "elr", false),
            Err(AuthorizerError::NoSuchUser(_))
        ));
    }

    #[test]
    fn hashed_and_plain_users_side_by_side() {
        let d = tmpdir("hashed");
        let mut a = DummyAuthorizer::new();
        let hash = crypt::hash_password("s3cret", crypt::Method::Yescrypt).unwrap();
        a.add_user_hashed("h", &hash, &d, "elr").unwrap();
        a.add_user("p", "$6$looks$like", &d, "elr").unwrap();
        assert!(a.is_hashed("h") && !a.is_hashed("p"));
        assert!(a.validate_authentication("h", "s3cret").is_ok());
        assert_eq!(
            a.validate_authentication("h", &hash),
            Err(AuthError::BadCredentials)
        );
        // A plain password that merely looks like a hash is still plain.
        assert!(a.validate_authentication("p", "$6$looks$like").is_ok());
        assert_eq!(
            a.add_user_hashed("x", "12345", &d, "elr"),
            Err(AuthorizerError::NotAHash("x".into()))
        );
        assert!(!format!("{a:?}").contains("s3cret") && !format!("{a:?}").contains(&hash));
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"a", b""));
    }
}
