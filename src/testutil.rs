//! Helpers shared by the unit tests.

use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory, removed with everything in it
/// when the value is dropped, whether the test passed or failed.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// Makes `ftpdlib-<tag>-<pid>`, emptying what an earlier run left there. `tag` must be
    /// unique among the tests of the crate, which run in parallel.
    pub(crate) fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ftpdlib-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        // A test without its directory cannot run: failing it here is the point.
        std::fs::create_dir_all(&d).expect("create a test directory");
        TempDir(d.canonicalize().expect("canonicalize a test directory"))
    }
}

impl Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
