//! What the demos share: the directory they serve.

use std::io;
use std::path::PathBuf;

/// The directory a demo serves: `FTPD_DIR` if set, else `ftpdlib-demo` under the system's
/// temporary directory, made if missing. Never the directory the demo was started from: a
/// demo user with write access would write into your checkout.
pub fn served_dir() -> io::Result<PathBuf> {
    let dir = match std::env::var_os("FTPD_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join("ftpdlib-demo"),
    };
    std::fs::create_dir_all(&dir)?;
    dir.canonicalize()
}
