//! Throw-away system accounts for the tests that run as root.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Whether the tests may run: root, or a skip outside CI.
pub fn require_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the system-user tests must run as root under CI");
    }
    eprintln!("skipping: the system-user tests need root (they create system accounts)");
    false
}

/// A system account that exists as long as this value does.
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl SystemUser {
    pub fn create(tag: &str, shell: &str, password: &str, method: &str) -> SystemUser {
        let name = format!("ftpdlibt{}{tag}", std::process::id());
        // A leftover of a killed run with the same pid would make useradd fail.
        let _ = Command::new("userdel").args(["-r", &name]).output();
        let out = Command::new("useradd")
            .args(["--create-home", "--user-group", "--shell", shell, &name])
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // From here on the account is removed on every path out, panics included.
        let mut user = SystemUser {
            name,
            uid: 0,
            gid: 0,
            home: PathBuf::new(),
        };
        let mut child = Command::new("chpasswd")
            .args(["-c", method])
            .stdin(Stdio::piped())
            .spawn()
            .expect("run chpasswd");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            writeln!(stdin, "{}:{password}", user.name).unwrap();
        }
        assert!(child.wait().unwrap().success(), "chpasswd {}", user.name);
        let entry = Command::new("getent")
            .args(["passwd", &user.name])
            .output()
            .unwrap();
        let entry = String::from_utf8_lossy(&entry.stdout).into_owned();
        let fields: Vec<&str> = entry.trim().split(':').collect();
        user.uid = fields[2].parse().unwrap();
        user.gid = fields[3].parse().unwrap();
        user.home = PathBuf::from(fields[5]);
        user
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        // If a failed check left the process under another identity, userdel would fail
        // too: get root's ids back first (the saved uid is still 0).
        // SAFETY: plain system calls on integers.
        unsafe {
            libc::seteuid(0);
            libc::setegid(0);
        }
        let out = Command::new("userdel").args(["-r", &self.name]).output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: userdel -r {} failed: {out:?}", self.name);
        }
    }
}
