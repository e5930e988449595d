//! The `ftpdlib` command's storage back-ends with real clients: `--memory` keeps every
//! file in memory and nothing reaches the disk.

mod util;

use std::process::Command;

use util::*;

#[test]
fn the_memory_backend_from_the_command_line() {
    if !require("curl") || !require("python3") {
        return;
    }
    let dir = TempDir::new("memory-home");
    let (_d, port) = serve_daemon(&[
        "--memory",
        "-w",
        "-d",
        dir.path().to_str().unwrap(),
        "-u",
        "user",
        "-P",
        "secret",
    ]);
    let body = random_bytes(3 << 20, 77);
    let local = TempDir::new("memory-local");
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let url = format!("ftp://user:secret@127.0.0.1:{port}/up.bin");
    run(curl().arg("-T").arg(local.join("up.bin")).arg(&url));
    let out = run(curl().arg(&url));
    assert_same(&out.stdout, &body);
    // Nothing reached the disk.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
f.login("user", "secret")
f.mkd("d")
f.cwd("d")
f.storbinary("STOR a.txt", io.BytesIO(b"hello memory"))
f.rename("a.txt", "b.txt")
assert f.nlst() == ["b.txt"], f.nlst()
# SIZE is refused in ASCII mode (as pyftpdlib refuses it), and NLST left ASCII on.
f.voidcmd("TYPE I")
assert f.size("b.txt") == 12
buf = io.BytesIO()
f.retrbinary("RETR b.txt", buf.write)
assert buf.getvalue() == b"hello memory"
f.cwd("/")
lines = []
f.retrlines("LIST", lines.append)
assert any(l.endswith(" d") and l.startswith("d") for l in lines), lines
f.delete("d/b.txt")
f.rmd("d")
f.quit()
print("ok")
"#
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

/// `--memory` and `--storage` both replace the disk: refused together, whichever way they
/// come, before any store is reached (the memory used to win, silently, under a start-up
/// line naming the object store, and the files were lost at exit).
#[test]
fn memory_and_an_object_store_are_refused_together() {
    let err = fails(&["--memory", "--storage", "s3://bucket/prefix", "-p", "0"]);
    assert!(err.contains("--memory and --storage"), "{err}");
    let err = ftpdlib()
        .args(["--memory", "-p", "0"])
        .env("FTPDLIB_STORAGE", "s3://bucket/prefix")
        .output()
        .unwrap();
    assert!(!err.status.success());
    let err = String::from_utf8_lossy(&err.stderr);
    assert!(err.contains("--memory and --storage"), "{err}");
}
