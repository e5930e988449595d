//! Real clients against a real server: curl, wget and Python's ftplib, with files compared
//! byte for byte at 0 B, 1 B, 64 KiB and 50 MiB.

mod util;

use std::path::Path;
use std::process::Command;

use util::{assert_same, curl, random_bytes, require, run, write_files, TempDir, TestServer};

const SIZES: [usize; 4] = [0, 1, 64 * 1024, 50 << 20];

#[test]
fn curl_download_upload_listing_passive_and_active() {
    if !require("curl") {
        return;
    }
    let s = TestServer::start();
    let local = TempDir::new("curl");
    let files = write_files(s.root.path(), &SIZES, 100);
    for (name, body) in &files {
        // Passive download.
        let got = run(curl().arg(s.url("user", name))).stdout;
        assert_same(&got, body);
        // Active download with -P.
        let got = run(curl().args(["-P", "127.0.0.1"]).arg(s.url("user", name))).stdout;
        assert_same(&got, body);
        // Upload, then compare what landed on disk.
        let src = local.join(name);
        std::fs::write(&src, body).unwrap();
        run(curl()
            .arg("-T")
            .arg(&src)
            .arg(s.url("user", &format!("up/{name}")))
            .arg("--ftp-create-dirs"));
        assert_same(
            &std::fs::read(s.root.join(&format!("up/{name}"))).unwrap(),
            body,
        );
    }
    // Listing: LIST and NLST.
    let list = String::from_utf8(run(curl().arg(s.url("user", ""))).stdout).unwrap();
    for (name, _) in &files {
        assert!(list.contains(name.as_str()), "{list}");
    }
    let nlst =
        String::from_utf8(run(curl().arg("--list-only").arg(s.url("user", ""))).stdout).unwrap();
    assert!(nlst.lines().any(|l| l == "up"), "{nlst}");
    // Active upload with EPRT (curl's default active command).
    let src = local.join("active.bin");
    std::fs::write(&src, &files[2].1).unwrap();
    run(curl()
        .args(["-P", "127.0.0.1"])
        .arg("-T")
        .arg(&src)
        .arg(s.url("user", "active.bin")));
    assert_same(
        &std::fs::read(s.root.join("active.bin")).unwrap(),
        &files[2].1,
    );
    // Quote commands: delete what was uploaded.
    run(curl()
        .arg(s.url("user", ""))
        .args(["-Q", "DELE active.bin"])
        .arg("-o")
        .arg("/dev/null"));
    assert!(!s.root.join("active.bin").exists());
}

#[test]
fn curl_sees_errors_as_errors() {
    if !require("curl") {
        return;
    }
    let s = TestServer::start();
    // A missing file: curl reports FTP error 78 (remote file not found).
    let out = curl().arg(s.url("user", "missing")).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A bad password: curl's login-denied code 67.
    let out = curl()
        .arg(format!("ftp://user:wrong@{}/", s.addr))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(67));
    // A read-only user cannot upload.
    let local = TempDir::new("curl-ro");
    std::fs::write(local.join("x"), b"x").unwrap();
    let out = curl()
        .arg("-T")
        .arg(local.join("x"))
        .arg(s.url("ro", "x"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!s.root.join("x").exists());
}

#[test]
fn wget_downloads_and_mirrors() {
    if !require("wget") {
        return;
    }
    let s = TestServer::start();
    let files = write_files(s.root.path(), &SIZES, 100);
    std::fs::create_dir_all(s.root.join("tree/nested")).unwrap();
    std::fs::write(s.root.join("tree/a.txt"), b"a").unwrap();
    std::fs::write(s.root.join("tree/nested/b.txt"), b"bb").unwrap();
    let local = TempDir::new("wget");
    for (name, body) in &files {
        let dst = local.join(name);
        run(Command::new("wget")
            .args(["-q", "--tries=1", "--timeout=60", "-O"])
            .arg(&dst)
            .arg(s.url("user", name)));
        assert_same(&std::fs::read(&dst).unwrap(), body);
    }
    // Anonymous download, as wget does by default.
    let dst = local.join("anon");
    run(Command::new("wget")
        .args(["-q", "--tries=1", "-O"])
        .arg(&dst)
        .arg(format!("ftp://{}/{}", s.addr, files[1].0)));
    assert_same(&std::fs::read(&dst).unwrap(), &files[1].1);
    // Recursive mirror.
    let m = local.join("mirror");
    run(Command::new("wget")
        .args(["-q", "--tries=1", "-m", "-nH", "-P"])
        .arg(&m)
        .arg(s.url("user", "tree/")));
    assert_eq!(std::fs::read(m.join("tree/a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(m.join("tree/nested/b.txt")).unwrap(), b"bb");
}

#[test]
fn python_ftplib_session() {
    if !require("python3") {
        return;
    }
    let s = TestServer::start();
    let files = write_files(s.root.path(), &SIZES, 100);
    let local = TempDir::new("ftplib");
    let script = format!(
        r#"
import ftplib, io, os, sys
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=60)
f.login("user", "pass")
assert f.pwd() == "/"
names = f.nlst()
assert names == sorted({names:?}), names
for name in {names:?}:
    buf = io.BytesIO()
    f.retrbinary("RETR " + name, buf.write)
    with open(os.path.join({local:?}, name), "wb") as out:
        out.write(buf.getvalue())
    with open(os.path.join({local:?}, name), "rb") as src:
        f.storbinary("STOR copy-" + name, src)
    assert f.size("copy-" + name) == len(buf.getvalue())
f.mkd("d")
f.cwd("d")
assert f.pwd() == "/d"
f.cwd("..")
f.rename("copy-{first}", "d/renamed")
f.delete("d/renamed")
f.rmd("d")
lines = []
f.retrlines("LIST", lines.append)
# The originals and their copies, less the copy renamed and deleted above.
assert len(lines) == 2 * len({names:?}) - 1, lines
# Active mode too.
f.set_pasv(False)
buf = io.BytesIO()
f.retrbinary("RETR {small}", buf.write)
assert len(buf.getvalue()) == {small_len}
try:
    f.sendcmd("RETR nope")
    sys.exit("RETR nope should fail")
except ftplib.error_perm as e:
    assert str(e).startswith("550") or str(e).startswith("425"), e
try:
    f.cwd("/missing")
    sys.exit("cwd should fail")
except ftplib.error_perm as e:
    assert str(e).startswith("550"), e
f.quit()
print("ok")
"#,
        port = s.addr.port(),
        names = files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        local = local.path().to_str().unwrap(),
        first = files[0].0,
        small = files[2].0,
        small_len = files[2].1.len(),
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    for (name, body) in &files {
        assert_same(&std::fs::read(local.join(name)).unwrap(), body);
        if name != &files[0].0 {
            assert_same(
                &std::fs::read(s.root.join(&format!("copy-{name}"))).unwrap(),
                body,
            );
        }
    }
}

#[test]
fn python_ftplib_abort_during_large_retr() {
    if !require("python3") {
        return;
    }
    let s = TestServer::start();
    std::fs::write(s.root.join("big"), random_bytes(100 << 20, 77)).unwrap();
    let script = format!(
        r#"
import ftplib
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=60)
f.login("user", "pass")
conn = f.transfercmd("RETR big")
conn.recv(65536)
resp = f.abort()
# RFC 959: 426 for the aborted transfer, then 226 for the ABOR itself.
assert resp[:3] == "426", resp
assert f.voidresp()[:3] == "226"
conn.close()
assert f.voidcmd("NOOP").startswith("200")
assert f.size("big") == {size}
f.quit()
print("ok")
"#,
        port = s.addr.port(),
        size = 100 << 20,
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
}

#[test]
fn curl_resume_and_ftp_methods() {
    if !require("curl") {
        return;
    }
    let s = TestServer::start();
    let body = random_bytes(3 << 20, 33);
    std::fs::create_dir_all(s.root.join("a/b")).unwrap();
    std::fs::write(s.root.join("a/b/f.bin"), &body).unwrap();
    let local = TempDir::new("curl-resume");
    // Resume a download from a partial local file.
    let part = local.join("f.bin");
    std::fs::write(&part, &body[..1_000_000]).unwrap();
    run(curl()
        .args(["-C", "-", "-o"])
        .arg(&part)
        .arg(s.url("user", "a/b/f.bin")));
    assert_same(&std::fs::read(&part).unwrap(), &body);
    // Resume an upload: the server has the first part.
    std::fs::write(s.root.join("a/up.bin"), &body[..500_000]).unwrap();
    run(curl()
        .args(["-C", "-", "-T"])
        .arg(&part)
        .arg(s.url("user", "a/up.bin")));
    assert_same(&std::fs::read(s.root.join("a/up.bin")).unwrap(), &body);
    // Every way curl walks the path, in passive and active mode.
    for method in ["multicwd", "singlecwd", "nocwd"] {
        let got = run(curl()
            .args(["--ftp-method", method, "--ftp-pasv"])
            .arg(s.url("user", "a/b/f.bin")))
        .stdout;
        assert_same(&got, &body);
        let got = run(curl()
            .args(["--ftp-method", method, "-P", "127.0.0.1"])
            .arg(s.url("user", "a/b/f.bin")))
        .stdout;
        assert_same(&got, &body);
    }
    // EPSV off: plain PASV and PORT.
    let got = run(curl()
        .args(["--disable-epsv"])
        .arg(s.url("user", "a/b/f.bin")))
    .stdout;
    assert_same(&got, &body);
    let got = run(curl()
        .args(["--disable-eprt", "-P", "127.0.0.1"])
        .arg(s.url("user", "a/b/f.bin")))
    .stdout;
    assert_same(&got, &body);
}

#[test]
fn python_ftplib_mlsd_mlst_rest_stou_appe() {
    if !require("python3") {
        return;
    }
    let s = TestServer::start();
    let body = random_bytes(1 << 20, 44);
    std::fs::write(s.root.join("data.bin"), &body).unwrap();
    std::fs::create_dir(s.root.join("sub")).unwrap();
    let script = format!(
        r#"
import ftplib, io
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=60)
f.login("user", "pass")
entries = dict(f.mlsd())
assert entries["data.bin"]["type"] == "file", entries
assert entries["data.bin"]["size"] == "{size}", entries
assert entries["sub"]["type"] == "dir", entries
assert "r" in entries["data.bin"]["perm"]
resp = f.sendcmd("MLST data.bin")
assert resp.startswith("250-") and "size={size};" in resp, resp
# OPTS MLST (sent by mlsd(facts=...)) holds for the rest of the session.
facts = dict(f.mlsd(facts=["type", "unix.mode"]))
assert set(facts["data.bin"]) == {{"type", "unix.mode"}}, facts
assert "size=" not in f.sendcmd("MLST data.bin")
# REST resume of RETR.
buf = io.BytesIO()
f.retrbinary("RETR data.bin", buf.write, rest=1000)
assert len(buf.getvalue()) == {size} - 1000
# REST resume of STOR: send the tail at an offset.
f.storbinary("STOR copy.bin", io.BytesIO(open("{root}/data.bin", "rb").read()[:4096]))
f.storbinary("STOR copy.bin", io.BytesIO(open("{root}/data.bin", "rb").read()[4096:]), rest=4096)
# APPE and STOU.
f.storbinary("APPE log.txt", io.BytesIO(b"one\n"))
f.storbinary("APPE log.txt", io.BytesIO(b"two\n"))
resp = f.storbinary("STOU", io.BytesIO(b"unique"))
assert resp.startswith("226"), resp
f.quit()
print("ok")
"#,
        port = s.addr.port(),
        size = body.len(),
        root = s.root.path().display(),
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_same(&std::fs::read(s.root.join("copy.bin")).unwrap(), &body);
    assert_eq!(
        std::fs::read(s.root.join("log.txt")).unwrap(),
        b"one\ntwo\n"
    );
    let unique = std::fs::read_dir(s.root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read(e.path())
                .map(|b| b == b"unique")
                .unwrap_or(false)
        })
        .count();
    assert_eq!(unique, 1);
}

/// A tree with nested folders, odd names and an empty file and folder.
fn make_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("top.txt".to_string(), b"top".to_vec()),
        ("empty".to_string(), Vec::new()),
        ("with space/inner file.txt".to_string(), b"spaced".to_vec()),
        ("日本/é.bin".to_string(), random_bytes(70_000, 5)),
        ("a/b/c/deep.bin".to_string(), random_bytes(300_000, 6)),
    ];
    for (name, body) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    std::fs::create_dir_all(root.join("empty dir")).unwrap();
    files
}

#[test]
fn lftp_mirror_both_ways() {
    if !require("lftp") {
        return;
    }
    let s = TestServer::start();
    let files = make_tree(&s.root.join("tree"));
    let local = TempDir::new("lftp");
    let lftp = |cmds: &str| {
        let script = format!(
            "set net:max-retries 1; set net:timeout 30; set cmd:fail-exit yes; open -u user,pass ftp://{}:{}; {cmds}; bye",
            s.addr.ip(),
            s.addr.port()
        );
        run(Command::new("timeout").args(["120", "lftp", "-c", &script]));
    };
    lftp(&format!("mirror tree {}", local.join("down").display()));
    for (name, body) in &files {
        assert_same(&std::fs::read(local.join("down").join(name)).unwrap(), body);
    }
    assert!(local.join("down/empty dir").is_dir());
    lftp(&format!("mirror -R {} up", local.join("down").display()));
    for (name, body) in &files {
        assert_same(&std::fs::read(s.root.join("up").join(name)).unwrap(), body);
    }
    assert!(s.root.join("up/empty dir").is_dir());
    // Active mode too.
    lftp(&format!(
        "set ftp:passive-mode off; mirror tree {}",
        local.join("active").display()
    ));
    for (name, body) in &files {
        assert_same(
            &std::fs::read(local.join("active").join(name)).unwrap(),
            body,
        );
    }
}
