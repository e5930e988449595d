//! Requests: the work that may block, which a session hands out instead of doing it, and
//! the completions it gets back.
//!
//! The session emits [`Action::Request`](super::Action::Request) and reads no further
//! command until its owner calls [`Session::handle_completion`](super::Session::handle_completion)
//! with the request's id. The owner decides where [`Request::start`] runs: on the worker
//! pool, or at once on its own thread when [`Request::is_inline`] says the work is cheap. A
//! [`Request`] carries everything it needs (the storage, the authorizer, the user to
//! impersonate), so running it touches nothing of the session; tests run it by hand or
//! answer with a made-up [`Completion`].

use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::authorizer::{AuthError, AuthReply, Authorizer, Identity, SwitchError};
use crate::config::FilesystemFactory;
use crate::filesystem::{FileReader, FileWriter, Filesystem, Homes, Stat, WriteMode};
use crate::listing::{ListFormat, Listing, PermContext};

/// What to do.
#[derive(Debug)]
pub enum Op {
    /// Check a password, find the home and open the user's storage (PASS).
    Login {
        /// The user name.
        user: String,
        /// The password as sent.
        password: String,
    },
    /// Metadata, following links (SIZE, MDTM, MLST, RNFR's check; STOR's checks).
    Stat {
        /// Virtual path.
        path: PathBuf,
    },
    /// Metadata of the object itself, not following a link (RNFR).
    Lstat {
        /// Virtual path.
        path: PathBuf,
    },
    /// What a STOR would write into: the file's metadata, `None` where it does not exist
    /// yet but its directory does, `NotFound` where the directory is missing.
    WriteTarget {
        /// Virtual path.
        path: PathBuf,
    },
    /// Check that a directory can be entered (CWD).
    Cwd {
        /// Virtual path.
        path: PathBuf,
    },
    /// Make a directory.
    Mkdir {
        /// Virtual path.
        path: PathBuf,
    },
    /// Remove an empty directory.
    Rmdir {
        /// Virtual path.
        path: PathBuf,
    },
    /// Remove a file or a link.
    Remove {
        /// Virtual path.
        path: PathBuf,
    },
    /// Rename.
    Rename {
        /// Virtual path of the source.
        from: PathBuf,
        /// Virtual path of the destination.
        to: PathBuf,
    },
    /// Set the permission bits.
    Chmod {
        /// Virtual path.
        path: PathBuf,
        /// The bits, at most 0o777.
        mode: u32,
    },
    /// Set the modification time of a regular file (MFMT).
    SetMtime {
        /// Virtual path.
        path: PathBuf,
        /// Seconds since the epoch.
        secs: i64,
    },
    /// Open a file for reading (RETR); a directory is `IsADirectory`.
    OpenRead {
        /// Virtual path.
        path: PathBuf,
        /// Where to start (REST).
        offset: u64,
    },
    /// Open a file for writing (STOR, APPE).
    OpenWrite {
        /// Virtual path.
        path: PathBuf,
        /// How.
        mode: WriteMode,
    },
    /// Create a file with a name not yet taken in `dir`: `base`, then `base.1` ... (STOU).
    CreateUnique {
        /// Virtual path of the directory.
        dir: PathBuf,
        /// The name to start from.
        base: Vec<u8>,
    },
    /// Open a listing (LIST, NLST, MLSD), or make it whole (`whole`: STAT with a path).
    List {
        /// Virtual path.
        path: PathBuf,
        /// What to list instead, the first that exists, when nothing is called `path` (LIST
        /// -la: the argument taken as ls-style flags before a path).
        fallback: Vec<PathBuf>,
        /// Which listing.
        format: ListFormat,
        /// MLSD's facts.
        facts: Vec<&'static str>,
        /// MLSD's perm fact.
        perm: Option<PermContext>,
        /// Now, seconds since the epoch, for LIST's time column.
        now: i64,
        /// LIST times in UTC.
        gmt: bool,
        /// Make the whole listing now.
        whole: bool,
    },
}

/// The result of an [`Op`].
pub enum Completion {
    /// [`Op::Login`]: the user's storage, or why not.
    Login(Result<Arc<dyn Filesystem>, AuthError>),
    /// [`Op::WriteTarget`].
    Target(io::Result<Option<Stat>>),
    /// [`Op::Stat`], [`Op::Lstat`].
    Stat(io::Result<Stat>),
    /// Operations that return nothing.
    Done(io::Result<()>),
    /// [`Op::OpenRead`].
    Reader(io::Result<Box<dyn FileReader>>),
    /// [`Op::OpenWrite`].
    Writer(io::Result<Box<dyn FileWriter>>),
    /// [`Op::CreateUnique`]: the name made, and the file.
    Unique(io::Result<(Vec<u8>, Box<dyn FileWriter>)>),
    /// [`Op::List`] (not whole).
    Listing(io::Result<Box<Listing>>),
    /// [`Op::List`] (whole).
    Text(io::Result<Vec<u8>>),
    /// The work failed inside: it panicked (`close` false), the user's identity could not be
    /// taken (`code` 550) or could not be given back (`close` true: the session ends).
    Internal {
        /// The reply code.
        code: u16,
        /// The reply text.
        text: String,
        /// End the session.
        close: bool,
    },
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Completion::Login(r) => write!(f, "Login({:?})", r.as_ref().map(|_| ())),
            Completion::Stat(r) => write!(f, "Stat({r:?})"),
            Completion::Target(r) => write!(f, "Target({r:?})"),
            Completion::Done(r) => write!(f, "Done({r:?})"),
            Completion::Reader(r) => write!(f, "Reader({:?})", r.as_ref().map(|_| ())),
            Completion::Writer(r) => write!(f, "Writer({:?})", r.as_ref().map(|_| ())),
            Completion::Unique(r) => write!(f, "Unique({:?})", r.as_ref().map(|(n, _)| n)),
            Completion::Listing(r) => write!(f, "Listing({:?})", r.as_ref().map(|_| ())),
            Completion::Text(r) => write!(f, "Text({:?})", r.as_ref().map(Vec::len)),
            Completion::Internal { code, text, close } => {
                write!(f, "Internal({code}, {text:?}, close={close})")
            }
        }
    }
}

impl Completion {
    /// What a request that panicked completes with.
    pub fn panicked() -> Completion {
        Completion::Internal {
            code: 451,
            text: "Requested action aborted: local error in processing.".into(),
            close: false,
        }
    }
}

/// A piece of work for the session's owner to run, and give back with its id.
pub struct Request {
    /// The id to complete it with.
    pub id: u64,
    /// What to do.
    pub op: Op,
    fs: Option<Arc<dyn Filesystem>>,
    authorizer: Arc<dyn Authorizer>,
    factory: FilesystemFactory,
    /// The homes `factory` keeps open, when it is the default storage.
    homes: Option<Arc<Homes>>,
    /// The logged-in user whose identity the work runs under (system users).
    user: Option<String>,
    /// A login whose password was found right by [`refuse_early`](Self::refuse_early):
    /// what is left is opening the home.
    checked: bool,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match &self.op {
            // Never show a password.
            Op::Login { user, .. } => format!("Login {{ user: {user:?}, .. }}"),
            op => format!("{op:?}"),
        };
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("op", &op)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Where a request's completion goes: called once, from the thread that finishes the work.
pub type Answer = Box<dyn FnOnce(Completion) + Send>;

/// A request id unique in the process: a completion can never be taken for another
/// session's, even when the slab key that asked has been reused.
pub fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn not_found() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "No such file or directory")
}

impl Request {
    pub(super) fn new(
        id: u64,
        op: Op,
        fs: Option<Arc<dyn Filesystem>>,
        authorizer: Arc<dyn Authorizer>,
        factory: FilesystemFactory,
        homes: Option<Arc<Homes>>,
        user: Option<String>,
    ) -> Request {
        Request {
            id,
            op,
            fs,
            authorizer,
            factory,
            homes,
            user,
            checked: false,
        }
    }

    /// Whether this is a login (the password check of PASS).
    pub fn is_login(&self) -> bool {
        matches!(self.op, Op::Login { .. })
    }

    /// Whether the work is cheap enough to run on the reactor thread: storage calls on a
    /// storage that says so ([`Filesystem::is_inline`]); a login whose cheap password check
    /// ([`Authorizer::is_inline`]: no hash, no network) [`refuse_early`](Self::refuse_early)
    /// has passed and whose home the default storage has open and checked less than a
    /// second ago, so that opening it costs no system call. A listing never is: its cost
    /// grows with the directory, whatever the storage.
    pub fn is_inline(&self, now: Instant) -> bool {
        match &self.op {
            // Its cheap check already passed (`refuse_early`): only the home is left.
            Op::Login { user, .. } => {
                self.checked
                    && self.homes.as_ref().is_some_and(|homes| {
                        self.authorizer
                            .home_dir(user)
                            .is_some_and(|home| homes.fresh(&home, now).is_some())
                    })
            }
            Op::List { .. } => false,
            _ => self.fs.as_ref().is_some_and(|f| f.is_inline()),
        }
    }

    /// Checks now, on the caller's thread, the password of a login whose check is cheap
    /// ([`Authorizer::is_inline`]), before anything else is decided: `Some` with the
    /// refusal of a wrong password, whether or not the home is open, so a 530 comes as fast
    /// for a name that exists as for one that does not (whose check never needs a home)
    /// and the time of a refusal does not tell which names exist. `None` for any other
    /// request, and for a right password: the login is then [`is_inline`](Self::is_inline)
    /// if its home is open, and [`start`](Self::start) only opens the home, without
    /// checking again.
    pub fn refuse_early(&mut self) -> Option<Completion> {
        let Op::Login { user, password } = &self.op else {
            return None;
        };
        if self.checked || !self.authorizer.is_inline(user) {
            return None;
        }
        match self.authorizer.validate_authentication(user, password) {
            Ok(()) => {
                self.checked = true;
                None
            }
            Err(e) => Some(Completion::Login(Err(e))),
        }
    }

    /// Does the work and hands the completion to `answer`: before returning, except for a
    /// login whose authorizer answers later ([`Authorizer::start_authentication`]), where
    /// `answer` is called by the thread that answers. If the authorizer drops its reply
    /// unanswered, `answer` is dropped uncalled: the owner must take that as a failure (the
    /// worker pool does: 451).
    ///
    /// Storage work runs under the user's identity where the authorizer impersonates
    /// (system users): the switch is per thread, so the thread that runs this may be any.
    /// Work on an inline storage ([`Filesystem::is_inline`]) is not impersonated: it may run
    /// on the reactor thread, which keeps the server's ids.
    pub fn start(self, answer: Answer) {
        let Request {
            op,
            fs,
            authorizer,
            factory,
            user,
            checked,
            ..
        } = self;
        if let Op::Login { user, password } = op {
            if checked {
                return answer(Completion::Login(open_home(&*authorizer, &factory, &user)));
            }
            let auth = Arc::clone(&authorizer);
            let name = user.clone();
            let reply = AuthReply::new(move |r| {
                answer(Completion::Login(
                    r.and_then(|()| open_home(&*auth, &factory, &name)),
                ))
            });
            return authorizer.start_authentication(&user, &password, reply);
        }
        answer(storage_work(op, fs, &authorizer, user));
    }

    /// Does the work on this thread and returns the completion: [`start`](Self::start) for
    /// work that completes at once. A login whose authorizer answers later comes back as
    /// the 451 failure, so logins go through `start`.
    pub fn run(self) -> Completion {
        // A slot, not a channel: a std channel allocates and zeroes a block of its own.
        let slot = Arc::new(std::sync::Mutex::new(None));
        let put = Arc::clone(&slot);
        self.start(Box::new(move |c| {
            *put.lock().unwrap_or_else(|e| e.into_inner()) = Some(c);
        }));
        let got = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        got.unwrap_or_else(Completion::panicked)
    }
}

/// A storage request, under the user's identity where the authorizer impersonates. A
/// listing keeps the identity, so that its later pieces are read as the user too.
fn storage_work(
    op: Op,
    fs: Option<Arc<dyn Filesystem>>,
    authorizer: &Arc<dyn Authorizer>,
    user: Option<String>,
) -> Completion {
    let Some(fs) = fs else {
        return Completion::Done(Err(not_found()));
    };
    // An inline storage answers on the reactor thread, which never takes a user's ids;
    // and it keeps nothing the kernel checks ids against, so there is nothing to guard.
    let Some(user) = user.filter(|_| !fs.is_inline()) else {
        return perform(&*fs, op);
    };
    let id = Identity::new(Arc::clone(authorizer), user);
    let work = || catch_unwind(AssertUnwindSafe(|| perform(&*fs, op)));
    match id.run(work) {
        Ok(Ok(Completion::Listing(Ok(mut l)))) => {
            l.set_identity(id);
            Completion::Listing(Ok(l))
        }
        Ok(Ok(c)) => c,
        Ok(Err(_panic)) => Completion::panicked(),
        Err(SwitchError::Enter) => Completion::Internal {
            code: 550,
            text: "Can't switch to the user's identity.".into(),
            close: false,
        },
        Err(SwitchError::Leave) => Completion::Internal {
            code: 421,
            text: "Internal error; closing the connection.".into(),
            close: true,
        },
    }
}

/// After a successful password check: the user's home and storage.
fn open_home(
    authorizer: &dyn Authorizer,
    factory: &FilesystemFactory,
    user: &str,
) -> Result<Arc<dyn Filesystem>, AuthError> {
    let home = authorizer.home_dir(user).ok_or(AuthError::BadCredentials)?;
    factory(&home).map_err(|e| {
        crate::logger::logerror(&format!("home of {user} unusable: {e}"));
        // Out of descriptors or memory (each session holds its home open) is the
        // server's passing shortage, not the account's fault: say so.
        if super::error_code(&e, 530) == 451 {
            return AuthError::Refused(format!(
                "Home directory unavailable: {}; try again later.",
                super::strerror(&e)
            ));
        }
        AuthError::Refused("Home directory unavailable.".to_string())
    })
}

fn perform(fs: &dyn Filesystem, op: Op) -> Completion {
    match op {
        Op::Login { .. } => Completion::Done(Err(not_found())),
        Op::Stat { path } => Completion::Stat(fs.stat(&path)),
        Op::Lstat { path } => Completion::Stat(fs.lstat(&path)),
        Op::WriteTarget { path } => Completion::Target(write_target(fs, &path)),
        Op::Cwd { path } => Completion::Done(cwd(fs, &path)),
        Op::Mkdir { path } => Completion::Done(fs.mkdir(&path)),
        Op::Rmdir { path } => Completion::Done(fs.rmdir(&path)),
        Op::Remove { path } => Completion::Done(fs.remove(&path)),
        Op::Rename { from, to } => Completion::Done(fs.rename(&from, &to)),
        Op::Chmod { path, mode } => Completion::Done(fs.chmod(&path, mode)),
        Op::SetMtime { path, secs } => Completion::Done(match fs.stat(&path) {
            Ok(m) if m.is_file() => fs.set_mtime(&path, secs),
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            )),
            Err(e) => Err(e),
        }),
        Op::OpenRead { path, offset } => Completion::Reader(fs.open_read(&path, offset)),
        Op::OpenWrite { path, mode } => Completion::Writer(fs.open_write(&path, mode)),
        Op::CreateUnique { dir, base } => Completion::Unique(unique(fs, &dir, &base)),
        Op::List {
            path,
            fallback,
            format,
            facts,
            perm,
            now,
            gmt,
            whole,
        } => {
            let open =
                |p: &Path| Listing::open(fs, p, format, facts.clone(), perm.clone(), now, gmt);
            let mut l = open(&path);
            for other in &fallback {
                match l {
                    Err(e) if e.kind() == io::ErrorKind::NotFound => l = open(other),
                    _ => break,
                }
            }
            if whole {
                Completion::Text(l.and_then(Listing::collect_all))
            } else {
                Completion::Listing(l.map(Box::new))
            }
        }
    }
}

fn write_target(fs: &dyn Filesystem, path: &Path) -> io::Result<Option<Stat>> {
    match fs.stat(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            if !fs.stat(parent)?.is_dir() {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// CWD: a directory that cannot be listed may still be entered, as with cd, but it must be
/// searchable.
fn cwd(fs: &dyn Filesystem, path: &Path) -> io::Result<()> {
    let m = fs.stat(path)?;
    if !m.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "Not a directory",
        ));
    }
    match fs.read_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(e),
        _ => Ok(()),
    }
}

fn unique(
    fs: &dyn Filesystem,
    dir: &Path,
    base: &[u8],
) -> io::Result<(Vec<u8>, Box<dyn FileWriter>)> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::ffi::OsStrExt;
    // pyftpdlib's names (tempfile.mkstemp's): the base, a dot and eight random characters.
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789_";
    let seed = std::collections::hash_map::RandomState::new();
    for n in 0..100u32 {
        let mut h = seed.build_hasher();
        h.write_u32(n);
        let mut bits = h.finish();
        let mut name = base.to_vec();
        name.push(b'.');
        for _ in 0..8 {
            name.push(CHARS[(bits % CHARS.len() as u64) as usize]);
            bits /= CHARS.len() as u64;
        }
        let path = dir.join(std::ffi::OsStr::from_bytes(&name));
        match fs.open_write(&path, WriteMode::CreateNew) {
            Ok(f) => return Ok((name, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "No usable unique file name found",
    ))
}
