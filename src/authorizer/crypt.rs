//! Password hashes through the system's crypt(3) (libxcrypt): checking a password against a
//! stored hash, and making new hashes for `ftpdlib hash-password`.
//!
//! The hashing itself is never reimplemented here. libxcrypt knows every method a Linux
//! system writes into /etc/shadow: yescrypt (`$y$`, Debian's default), sha512-crypt (`$6$`),
//! sha256-crypt (`$5$`), bcrypt (`$2b$`) and the older ones, so a hash copied from a shadow
//! file or made by `mkpasswd` works as it is.
//!
//! Hashing with yescrypt costs tens of milliseconds on purpose; it runs on the reactor thread,
//! so each login attempt against a hash pauses the server for that long.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int, c_ulong, c_void};

use super::constant_time_eq;

#[link(name = "crypt")]
extern "C" {
    /// `char *crypt_rn(const char *phrase, const char *setting, void *data, int size)`:
    /// thread-safe, returns NULL on failure rather than a "*0" string.
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;

    /// `char *crypt_gensalt_rn(const char *prefix, unsigned long count, const char *rbytes,
    /// int nrbytes, char *output, int output_size)`.
    fn crypt_gensalt_rn(
        prefix: *const c_char,
        count: c_ulong,
        rbytes: *const c_char,
        nrbytes: c_int,
        output: *mut c_char,
        output_size: c_int,
    ) -> *mut c_char;

    /// `int crypt_checksalt(const char *setting)`: whether libxcrypt would hash with this
    /// setting (or stored hash), without hashing anything.
    fn crypt_checksalt(setting: *const c_char) -> c_int;
}

/// `crypt_checksalt`'s answers that still hash: `CRYPT_SALT_OK`, `CRYPT_SALT_METHOD_LEGACY`
/// and `CRYPT_SALT_TOO_CHEAP` (`CRYPT_SALT_INVALID` is 1, `CRYPT_SALT_METHOD_DISABLED` 2).
const CHECKSALT_USABLE: [c_int; 3] = [0, 3, 4];

/// `sizeof(struct crypt_data)` in libxcrypt: output (384) + setting (384) + input (512) +
/// reserved (767) + initialized (1) + internal (30720).
const CRYPT_DATA_SIZE: usize = 32768;
/// `CRYPT_GENSALT_OUTPUT_SIZE`.
const GENSALT_OUTPUT_SIZE: usize = 192;
/// `CRYPT_MAX_PASSPHRASE_SIZE`: longer passwords are refused by the library.
const MAX_PASSPHRASE: usize = 512;

/// Hash method prefixes this module treats as crypt(3) hashes (the rest of libxcrypt's
/// methods are obsolete and not offered, though a stored hash of theirs would still verify
/// through [`verify`]).
const KNOWN_PREFIXES: [&str; 8] = ["$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$", "$1$"];

/// Why crypt(3) could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptError {
    /// The password holds a NUL byte or exceeds 512 bytes.
    BadPassword,
    /// The setting or hash is not one libxcrypt understands.
    BadHash,
    /// No random bytes for a salt.
    Random(String),
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::BadPassword => {
                f.write_str("password contains a NUL byte or is longer than 512 bytes")
            }
            CryptError::BadHash => f.write_str("not a crypt(3) hash this system supports"),
            CryptError::Random(e) => write!(f, "can't read random bytes for a salt: {e}"),
        }
    }
}

impl std::error::Error for CryptError {}

/// The methods `hash-password` offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    /// `$y$`, the default of Debian and Fedora.
    #[default]
    Yescrypt,
    /// `$6$`, sha512-crypt, understood by older systems too.
    Sha512,
}

impl Method {
    /// The prefix crypt_gensalt takes.
    fn prefix(self) -> &'static CStr {
        match self {
            Method::Yescrypt => c"$y$",
            Method::Sha512 => c"$6$",
        }
    }

    /// Parses `yescrypt` or `sha512`.
    pub fn parse(name: &str) -> Option<Method> {
        match name {
            "yescrypt" => Some(Method::Yescrypt),
            "sha512" | "sha512-crypt" => Some(Method::Sha512),
            _ => None,
        }
    }
}

/// Hashes `phrase` with the method and salt in `setting` (a salt from crypt_gensalt, or a
/// whole stored hash): crypt(3) itself.
///
/// # Errors
/// [`CryptError::BadPassword`] or [`CryptError::BadHash`].
pub fn crypt(phrase: &str, setting: &str) -> Result<String, CryptError> {
    if phrase.len() > MAX_PASSPHRASE {
        return Err(CryptError::BadPassword);
    }
    let phrase = CString::new(phrase).map_err(|_| CryptError::BadPassword)?;
    let setting = CString::new(setting).map_err(|_| CryptError::BadHash)?;
    // libxcrypt wants the whole struct crypt_data zeroed before first use; at 32 KiB it
    // belongs on the heap, not the reactor's stack.
    let mut data = vec![0u8; CRYPT_DATA_SIZE];
    // SAFETY: both strings are NUL-terminated and outlive the call; `data` is a writable
    // buffer of exactly the size passed, as large as struct crypt_data. The returned pointer
    // points into `data` and is read before `data` is dropped.
    let out = unsafe {
        crypt_rn(
            phrase.as_ptr(),
            setting.as_ptr(),
            data.as_mut_ptr().cast(),
            CRYPT_DATA_SIZE as c_int,
        )
    };
    if out.is_null() {
        return Err(CryptError::BadHash);
    }
    // SAFETY: on success crypt_rn returns a NUL-terminated string inside `data`.
    let hash = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // The passphrase copy libxcrypt kept in the buffer is wiped with it.
    data.fill(0);
    // Failure strings start with '*'; crypt_rn should return NULL instead, but be sure.
    if hash.starts_with('*') || hash.is_empty() {
        return Err(CryptError::BadHash);
    }
    Ok(hash)
}

/// Whether `password` hashes to `hash`; the final comparison runs in constant time. A
/// malformed hash never matches.
pub fn verify(password: &str, hash: &str) -> bool {
    match crypt(password, hash) {
        Ok(computed) => constant_time_eq(computed.as_bytes(), hash.as_bytes()),
        Err(_) => false,
    }
}

/// Whether `s` starts like a crypt(3) hash (`$y$`, `$6$`, ...), complete or not: a
/// password field that does is meant as a hash, and one that is not [`is_hash`] is a
/// mistake (a truncated or mangled hash) to report, not a password to accept.
pub fn looks_like_hash(s: &str) -> bool {
    KNOWN_PREFIXES.iter().any(|p| s.starts_with(p))
}

/// Whether `s` is a complete crypt(3) hash of a method this system supports: a known
/// `$id$` prefix, a checksum of the method's length in crypt's base64 alphabet after the
/// last `$` (bcrypt: 60 characters in all), and a setting libxcrypt accepts
/// (`crypt_checksalt`). Nothing is hashed: the check costs microseconds, where a yescrypt
/// hash costs tens of milliseconds (a reload of many accounts stays quick).
pub fn is_hash(s: &str) -> bool {
    let Some(prefix) = KNOWN_PREFIXES.iter().find(|p| s.starts_with(**p)) else {
        return false;
    };
    let b64 = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'/';
    let complete = match *prefix {
        "$2b$" | "$2y$" => s.len() == 60 && s.bytes().skip(7).all(b64),
        p => {
            // The checksum lengths libxcrypt writes: 43 for yescrypt, gost-yescrypt,
            // scrypt and sha256-crypt, 86 for sha512-crypt, 22 for md5-crypt.
            let want = match p {
                "$6$" => 86,
                "$1$" => 22,
                _ => 43,
            };
            s.rsplit_once('$')
                .is_some_and(|(_, sum)| sum.len() == want && sum.bytes().all(b64))
        }
    };
    let Ok(setting) = CString::new(s) else {
        return false;
    };
    // SAFETY: `setting` is NUL-terminated and outlives the call, which only reads it.
    complete && CHECKSALT_USABLE.contains(&unsafe { crypt_checksalt(setting.as_ptr()) })
}

/// Makes a new hash of `password` with a fresh random salt and the method's default cost.
///
/// # Errors
/// A password crypt(3) refuses, or no random bytes.
pub fn hash_password(password: &str, method: Method) -> Result<String, CryptError> {
    // 16 bytes: the salt size libxcrypt itself uses for yescrypt and bcrypt.
    let mut random = [0u8; 16];
    fill_random(&mut random)?;
    let mut setting = [0u8; GENSALT_OUTPUT_SIZE];
    // SAFETY: `prefix` is NUL-terminated and static; `random` holds `random.len()` bytes;
    // `setting` is writable and its full size is passed. Count 0 asks for the default cost.
    let out = unsafe {
        crypt_gensalt_rn(
            method.prefix().as_ptr(),
            0,
            random.as_ptr().cast(),
            random.len() as c_int,
            setting.as_mut_ptr().cast(),
            setting.len() as c_int,
        )
    };
    random.fill(0);
    if out.is_null() {
        return Err(CryptError::BadHash);
    }
    // SAFETY: on success the setting is a NUL-terminated string inside `setting`.
    let setting = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    crypt(password, &setting)
}

/// Fills `buf` from the kernel's random pool (getrandom(2)).
fn fill_random(buf: &mut [u8]) -> Result<(), CryptError> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(CryptError::Random(e.to_string()));
        }
        filled += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors_verify() {
        // From `openssl passwd -6 -salt saltsalt secret`, and Python's crypt.crypt for
        // yescrypt: other implementations agree with the one linked here.
        let sha = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert_eq!(crypt("secret", "$6$saltsalt$").unwrap(), sha);
        let y = "$y$j9T$saltsaltsaltsaltsalt$N.44bTTVedjKfuW7ar67CoWirFXUzuQT9Fy.bPddci7";
        assert!(verify("secret", y));
        assert!(!verify("secrets", y));
        assert!(verify("secret", sha));
        assert!(!verify("Secret", sha));
        assert!(!verify("secret", "$6$saltsalt$nothashed"));
        assert!(!verify("secret", "plain"));
        assert!(!verify("", ""));
    }

    #[test]
    fn new_hashes_round_trip() {
        for method in [Method::Yescrypt, Method::Sha512] {
            let h = hash_password("pä ss", method).unwrap();
            assert!(h.starts_with(method.prefix().to_str().unwrap()), "{h}");
            assert!(is_hash(&h));
            assert!(verify("pä ss", &h));
            assert!(!verify("pa ss", &h));
            assert_ne!(h, hash_password("pä ss", method).unwrap(), "salts differ");
        }
    }

    #[test]
    fn hash_detection_and_bad_input() {
        assert!(!is_hash("12345"));
        assert!(!is_hash("$6"));
        assert!(!is_hash("$x$abc$def"));
        // Truncated or mangled: the tutorial's own placeholder, a checksum cut short, a
        // character outside crypt's alphabet.
        let y = "$y$j9T$saltsaltsaltsaltsalt$N.44bTTVedjKfuW7ar67CoWirFXUzuQT9Fy.bPddci7";
        assert!(is_hash(y));
        assert!(!is_hash("$y$j9T$..."));
        assert!(!is_hash(&y[..y.len() - 1]));
        assert!(!is_hash(&y.replace("N.44", "N!44")));
        assert!(looks_like_hash("$y$j9T$...") && !looks_like_hash("secret"));
        assert_eq!(crypt("a\0b", "$6$salt$"), Err(CryptError::BadPassword));
        assert_eq!(
            crypt(&"x".repeat(MAX_PASSPHRASE + 1), "$6$salt$"),
            Err(CryptError::BadPassword)
        );
        assert_eq!(crypt("a", "$zz$"), Err(CryptError::BadHash));
    }
}
