//! `ftpdlib --storage s3://...` against a real Ceph cluster (RADOS Gateway, the S3 API),
//! started by the tests (tests/ceph/start-ceph.sh): real clients move trees through the
//! server into the bucket, and what the bucket holds is read back through the S3 API
//! (boto3), not through ftpdlib. Built with `cargo test --features opendal`.
#![cfg(feature = "opendal")]

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use util::ceph::{self, Ceph};
use util::*;

/// Arguments that serve `bucket` (under `prefix`) of `c` to user "u" (password "p"),
/// read-write, with a short request timeout so that faults show quickly.
fn storage_args(c: &Ceph, bucket: &str, prefix: &str) -> Vec<String> {
    [
        "--storage",
        &format!("s3://{bucket}/{prefix}"),
        "--s3-endpoint",
        &c.endpoint,
        "--s3-access-key-id",
        &c.access_key,
        "--s3-secret-access-key",
        &c.secret_key,
        "--s3-timeout",
        "5",
        "-w",
        "-u",
        "u",
        "-P",
        "p",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn serve(c: &Ceph, bucket: &str, prefix: &str, extra: &[&str]) -> (Daemon, u16) {
    let mut args = storage_args(c, bucket, prefix);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serve_daemon(&args)
}

fn ready() -> bool {
    ceph::require()
}

/// A session of user "u" on a server of a fresh bucket of the shared cluster (named after
/// `hint`); `None` when Ceph is missing outside CI.
fn session(hint: &str) -> Option<(&'static Ceph, String, Daemon, Client)> {
    let (c, bucket) = fresh_bucket(hint)?;
    let (d, port) = serve(c, &bucket, "", &[]);
    Some((c, bucket, d, login(port)))
}

/// The shared cluster and a fresh bucket of it (named after `hint`); `None` when Ceph is
/// missing outside CI.
fn fresh_bucket(hint: &str) -> Option<(&'static Ceph, String)> {
    if !ready() {
        return None;
    }
    let c = ceph::shared();
    let bucket = c.bucket(hint);
    Some((c, bucket))
}

fn login(port: u16) -> Client {
    let mut c = Client::connect(([127, 0, 0, 1], port).into());
    c.login("u", "p");
    c
}

/// Every regular file under `dir`, as `/`-separated relative names, sorted.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A tree with nested directories, names with a space and UTF-8, an empty file and files
/// around the server's 1 MiB piece and the store's 8 MiB part.
fn make_tree(dir: &Path, seed: u64) -> Vec<(String, Vec<u8>)> {
    let files: [(&str, usize); 7] = [
        ("top.txt", 1000),
        ("empty", 0),
        ("a/one MiB+1.bin", (1 << 20) + 1),
        ("a/b/deep.bin", 70_000),
        ("a/b/naïve – ünïcode.txt", 4321),
        ("c/nine MiB.bin", 9 << 20),
        ("c/d/e/f.bin", 12),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, random_bytes(*len, seed + i as u64)).unwrap();
    }
    tree(dir)
}

/// What the bucket holds under `prefix`, without directory markers: (relative key, size).
fn objects(c: &Ceph, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = c
        .list(bucket, prefix)
        .into_iter()
        .filter(|(k, _)| !k.ends_with('/'))
        .map(|(k, n)| (k[prefix.len()..].to_string(), n))
        .collect();
    v.sort();
    v
}

fn expect_objects(c: &Ceph, bucket: &str, prefix: &str, want: &[(String, Vec<u8>)]) {
    let got = objects(c, bucket, prefix);
    let want_keys: Vec<(String, u64)> = want
        .iter()
        .map(|(k, b)| (k.clone(), b.len() as u64))
        .collect();
    assert_eq!(got, want_keys, "the bucket under {prefix:?}");
    for (k, body) in want {
        let stored = c.get(bucket, &format!("{prefix}{k}")).expect("object");
        assert_same(&stored, body);
    }
}

/// lftp mirrors a tree up (mirror -R) and back down; ftplib and curl move single files;
/// rclone's FTP back-end copies a tree both ways. Each time the bucket, read with boto3,
/// holds exactly the files, byte for byte, and what comes back equals what went in.
#[test]
fn clients_move_trees_through_the_server_into_the_bucket() {
    if !ready() || !require("lftp") || !require("rclone") || !require("curl") {
        return;
    }
    let c = ceph::shared();
    let bucket = c.bucket("trees");
    let (_d, port) = serve(c, &bucket, "site", &[]);

    // lftp, both ways.
    let src = TempDir::new("s3-lftp-src");
    let want = make_tree(src.path(), 1);
    let url = format!("ftp://u:p@127.0.0.1:{port}");
    let script = format!(
        "set cmd:fail-exit yes; set net:max-retries 1; open {url}; mkdir -p lftp; \
         mirror -R {} /lftp",
        src.path().display()
    );
    run(Command::new("lftp").arg("-c").arg(&script));
    expect_objects(c, &bucket, "site/lftp/", &want);
    let back = TempDir::new("s3-lftp-back");
    let script = format!(
        "set cmd:fail-exit yes; open {url}; mirror /lftp {}",
        back.path().display()
    );
    run(Command::new("lftp").arg("-c").arg(&script));
    assert_eq!(tree(back.path()), want);

    // rclone's FTP back-end, both ways.
    let rsrc = TempDir::new("s3-rclone-src");
    let rwant = make_tree(rsrc.path(), 100);
    let remote = format!(
        ":ftp,host=127.0.0.1,port={port},user=u,pass={}:",
        obscure("p")
    );
    run(Command::new("rclone")
        .env_remove("AWS_CA_BUNDLE")
        .args(["copy", "-q", "--ignore-times"])
        .arg(rsrc.path())
        .arg(format!("{remote}rclone")));
    expect_objects(c, &bucket, "site/rclone/", &rwant);
    let rback = TempDir::new("s3-rclone-back");
    run(Command::new("rclone")
        .args(["copy", "-q"])
        .arg(format!("{remote}rclone"))
        .arg(rback.path()));
    assert_eq!(tree(rback.path()), rwant);

    // curl and ftplib, one file each, read back through the other.
    let body = random_bytes(3 << 20, 7);
    let f = TempDir::new("s3-curl");
    std::fs::write(f.join("up.bin"), &body).unwrap();
    run(curl()
        .arg("-T")
        .arg(f.join("up.bin"))
        .arg(format!("{url}/curl.bin")));
    let script = format!(
        r#"
import ftplib, io, sys
f = ftplib.FTP()
f.connect("127.0.0.1", {port}, timeout=30)
f.login("u", "p")
out = io.BytesIO()
f.retrbinary("RETR curl.bin", out.write)
sys.stdout.buffer.write(out.getvalue())
f.storbinary("STOR ftplib.bin", io.BytesIO(out.getvalue()[::-1]))
f.quit()
"#
    );
    let out = run(Command::new("python3").arg("-c").arg(&script));
    assert_same(&out.stdout, &body);
    assert_same(&c.get(&bucket, "site/curl.bin").unwrap(), &body);
    let reversed: Vec<u8> = body.iter().rev().copied().collect();
    assert_same(&c.get(&bucket, "site/ftplib.bin").unwrap(), &reversed);
    let got = run(curl().arg(format!("{url}/ftplib.bin")));
    assert_same(&got.stdout, &reversed);
}

/// rclone's way of writing a password into a connection string.
fn obscure(p: &str) -> String {
    let out = run(Command::new("rclone").args(["obscure", p]));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// What each FTP command does to objects (docs/storage.md), seen from both sides.
#[test]
fn ftp_commands_over_objects() {
    let Some((c, bucket, _d, mut s)) = session("semantics") else {
        return;
    };
    s.cmd("TYPE I", 200);

    // MKD writes a marker; an empty directory lists empty; RMD removes the marker.
    s.cmd("MKD dir", 257);
    assert_eq!(c.list(&bucket, ""), vec![("dir/".to_string(), 0)]);
    s.cmd("MKD dir", 550);
    s.cmd("MKD nowhere/sub", 550);
    s.cmd("CWD dir", 250);
    s.cmd("CWD /", 250);
    s.cmd("CWD /missing", 550);
    s.cmd("RMD dir", 250);
    assert!(c.list(&bucket, "").is_empty());

    // STOR into a directory; RMD of a non-empty prefix is 550 and deletes nothing.
    s.cmd("MKD d", 257);
    let body = random_bytes((1 << 20) + 3, 9);
    s.stor("STOR d/f.bin", &body);
    s.cmd("RMD d", 550);
    assert_same(&c.get(&bucket, "d/f.bin").unwrap(), &body);
    refused_transfer(&mut s, "STOR missing/x", 550);

    // SIZE and MDTM from the object's metadata.
    let size = s.cmd("SIZE d/f.bin", 213);
    assert_eq!(size.lines, vec![format!("213 {}", body.len())]);
    let mdtm = s.cmd("MDTM d/f.bin", 213);
    assert_eq!(mdtm.lines[0].len(), 4 + 14, "{:?}", mdtm.lines);

    // REST + RETR is a ranged read.
    s.cmd(format!("REST {}", (1 << 20) - 5), 350);
    let tail = s.retr("RETR d/f.bin");
    assert_same(&tail, &body[(1 << 20) - 5..]);

    // APPE and REST + STOR: objects can't be appended to or written at an offset.
    refused_transfer(&mut s, "APPE d/f.bin", 550);
    s.cmd("REST 10", 350);
    refused_transfer(&mut s, "STOR d/f.bin", 550);
    assert_same(&c.get(&bucket, "d/f.bin").unwrap(), &body);
    // REST 0 then STOR is a whole upload, over what was there.
    s.stor("STOR d/zero.bin", b"first");
    s.cmd("REST 0", 350);
    s.stor("STOR d/zero.bin", b"from the start");
    assert_eq!(c.get(&bucket, "d/zero.bin").unwrap(), b"from the start");
    s.cmd("DELE d/zero.bin", 250);

    // SITE CHMOD: objects have no mode bits. MFMT: their times can't be set, and the
    // command is not even offered (FEAT), so that clients don't try it after uploads.
    s.cmd("SITE CHMOD 600 d/f.bin", 550);
    s.cmd("MFMT 20200101000000 d/f.bin", 500);
    let feat = s.cmd("FEAT", 211);
    assert!(!feat.text().contains("MFMT"), "{:?}", feat.lines);

    // RNFR/RNTO of a file: copy then delete; of a directory: 550, nothing moves.
    s.cmd("RNFR d/f.bin", 350);
    s.cmd("RNTO g.bin", 250);
    assert!(c.get(&bucket, "d/f.bin").is_none());
    assert_same(&c.get(&bucket, "g.bin").unwrap(), &body);
    s.cmd("RNFR d", 350);
    let r = s.cmd("RNTO e", 550);
    assert!(r.text().contains("renamed"), "{:?}", r.lines);
    assert!(c.list(&bucket, "e").is_empty());

    // DELE; DELE of a directory is refused.
    s.cmd("DELE d", 550);
    s.cmd("DELE g.bin", 250);
    assert!(c.get(&bucket, "g.bin").is_none());
    s.cmd("RMD d", 250);

    // Names the store can't hold: 553. A key is at most 1024 bytes and UTF-8.
    let long = "n".repeat(1100);
    refused_transfer(&mut s, format!("STOR {long}"), 553);
    s.cmd(format!("MKD {long}"), 553);
    s.send_raw(b"MKD bad\xff\xfename\r\n");
    s.expect(553);
    s.cmd("NOOP", 200);
    assert!(c.list(&bucket, "").is_empty(), "{:?}", c.list(&bucket, ""));
}

/// A transfer command refused before its data connection is used: PASV, connect, the
/// command, `code`.
fn refused_transfer(s: &mut Client, line: impl AsRef<[u8]>, code: u16) {
    let addr = s.pasv();
    let _data = TcpStream::connect(addr).unwrap();
    s.cmd(line, code);
}

/// Objects written by another S3 client (no directory markers) show as a tree; listings of
/// more than one page (1000 keys) come whole, with sizes; a prefix's listing in NLST,
/// LIST and MLSD agrees with the bucket's.
#[test]
fn listings_page_through_the_bucket() {
    let Some((c, bucket)) = fresh_bucket("listing") else {
        return;
    };
    // Written straight into the bucket, as another S3 client would: no markers.
    c.boto3(
        "import concurrent.futures as cf\n\
         def put(i): s3.put_object(Bucket=args[0], Key='many/f%04d' % i, Body=b'x' * (i % 7))\n\
         list(cf.ThreadPoolExecutor(16).map(put, range(1205)))\n",
        &[&bucket],
    );
    c.put(&bucket, "x/y/z.txt", b"deep");
    let (_d, port) = serve(c, &bucket, "", &[]);
    let mut s = login(port);

    let names = list_names(&mut s, "NLST many");
    let mut expected: Vec<String> = (0..1205).map(|i| format!("many/f{i:04}")).collect();
    expected.sort();
    let mut got = names.clone();
    got.sort();
    // NLST of a directory gives bare names or paths, as the server's NLST does on disk.
    let got: Vec<String> = got
        .into_iter()
        .map(|n| {
            if n.starts_with("many/") {
                n
            } else {
                format!("many/{n}")
            }
        })
        .collect();
    assert_eq!(got, expected);

    let mlsd = list_names(&mut s, "MLSD many");
    assert_eq!(mlsd.len(), 1205);
    for line in &mlsd {
        let (facts, name) = line.split_once(' ').unwrap();
        let i: usize = name.trim_start_matches('f').parse().unwrap();
        assert!(facts.contains(&format!("size={};", i % 7)), "{line}");
        assert!(facts.contains("type=file;"), "{line}");
    }
    // The implicit directories of keys without markers.
    let top = list_names(&mut s, "MLSD /");
    assert!(
        top.iter()
            .any(|l| l.ends_with(" many") && l.contains("type=dir")),
        "{top:?}"
    );
    assert!(
        top.iter()
            .any(|l| l.ends_with(" x") && l.contains("type=dir")),
        "{top:?}"
    );
    s.cmd("CWD x/y", 250);
    assert_eq!(s.retr("RETR z.txt"), b"deep");
    let list = list_names(&mut s, "LIST");
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(
        list[0].ends_with(" z.txt") && list[0].contains(" 4 "),
        "{list:?}"
    );
}

/// Names the store would not keep as given are refused with 553 rather than stored under
/// another name or answered as an outage: white space at either end (OpenDAL trims it, so
/// `a ` would be the object `a`), a NUL, and a key over 1024 bytes once the store's root
/// is counted. Keys another S3 client wrote with `//`, `.` or `..` parts list no `.` or
/// `..` entries.
#[test]
fn names_the_store_would_change_are_refused_and_odd_keys_list_cleanly() {
    let Some((c, bucket)) = fresh_bucket("oddnames") else {
        return;
    };
    for key in ["site/a//b", "site/./y", "site/../x", "site/ok"] {
        c.put(&bucket, key, b"k");
    }
    let (_d, port) = serve(c, &bucket, "site", &[]);
    let mut s = login(port);
    s.cmd("TYPE I", 200);

    let mut names = list_names(&mut s, "NLST");
    names.sort();
    assert_eq!(names, ["a", "ok"]);
    let mlsd = list_names(&mut s, "MLSD");
    assert_eq!(mlsd.len(), 2, "{mlsd:?}");

    refused_transfer(&mut s, "STOR trail ", 553);
    refused_transfer(&mut s, "STOR \tlead", 553);
    refused_transfer(&mut s, b"STOR nul\0x", 553);
    s.cmd("MKD dir ", 553);
    // "site/" + name + a marker's "/" is 1024 bytes at most.
    let longest = "n".repeat(1024 - 5 - 1);
    s.stor(format!("STOR {longest}"), b"fits");
    refused_transfer(&mut s, format!("STOR {longest}n"), 553);
    s.cmd(format!("MKD {longest}n"), 553);
    s.cmd("NOOP", 200);
    let mut keys: Vec<String> = c.list(&bucket, "site/").into_iter().map(|k| k.0).collect();
    keys.sort();
    let mut want = [
        "site/../x".to_string(),
        "site/./y".to_string(),
        "site/a//b".to_string(),
        "site/ok".to_string(),
        format!("site/{longest}"),
    ];
    want.sort();
    assert_eq!(keys, want);
}

/// Starts a STOR of `name` and sends it 24 MiB, more than two parts, so that a multipart
/// upload is under way in `bucket`; returns the data connection, still open.
fn upload_under_way(c: &Ceph, bucket: &str, s: &mut Client, name: &str) -> TcpStream {
    let addr = s.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    s.send(format!("STOR {name}"));
    let r = s.read_reply();
    assert!(r.code == 150 || r.code == 125, "{:?}", r.lines);
    let chunk = random_bytes(1 << 20, 3);
    for _ in 0..24 {
        data.write_all(&chunk).unwrap();
    }
    assert!(wait_until(Duration::from_secs(20), || !c
        .uploads(bucket)
        .is_empty()));
    data
}

/// The lines of a listing command over PASV.
fn list_names(s: &mut Client, line: &str) -> Vec<String> {
    let addr = s.pasv();
    let mut data = TcpStream::connect(addr).unwrap();
    s.send(line);
    let r = s.read_reply();
    assert!(r.code == 150 || r.code == 125, "{line}: {:?}", r.lines);
    let mut out = String::new();
    data.read_to_string(&mut out).unwrap();
    s.expect(226);
    out.lines().map(str::to_string).collect()
}

/// An upload cut short (ABOR, a reset) leaves nothing in the bucket: no object, and its
/// multipart upload aborted.
#[test]
fn an_unfinished_upload_leaves_nothing() {
    let Some((c, bucket, _d, mut s)) = session("aborts") else {
        return;
    };
    s.cmd("TYPE I", 200);
    for how in ["abor", "reset"] {
        let data = upload_under_way(c, &bucket, &mut s, &format!("{how}.bin"));
        if how == "abor" {
            s.send("ABOR");
            s.expect(426);
            s.expect(226);
        } else {
            reset_close(data);
            s.expect(426);
        }
        s.cmd("NOOP", 200);
        assert!(
            wait_until(Duration::from_secs(20), || c.uploads(&bucket).is_empty()),
            "{how}: multipart uploads left: {:?}",
            c.uploads(&bucket)
        );
        assert!(c.get(&bucket, &format!("{how}.bin")).is_none(), "{how}");
    }
    assert!(c.list(&bucket, "").is_empty());
}

/// SIGTERM with an upload under way: the shutdown cuts it, and the process aborts its
/// multipart upload before it exits, so no parts stay stored (without waiting, the exit
/// ended the store's runtime before the abort was sent).
#[test]
fn a_shutdown_aborts_the_uploads_it_cuts() {
    let Some((c, bucket)) = fresh_bucket("shutdown") else {
        return;
    };
    let (mut d, port) = serve(c, &bucket, "", &["--shutdown-grace", "1"]);
    let mut s = login(port);
    s.cmd("TYPE I", 200);
    let _data = upload_under_way(c, &bucket, &mut s, "cut.bin");
    // SAFETY: kill(2) on the pid of our own child, which has not been waited for.
    assert_eq!(
        unsafe { libc::kill(d.0.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let end = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = d.0.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "the server did not exit");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    // Read at once: the exit comes after the abort, not before.
    assert!(
        c.uploads(&bucket).is_empty(),
        "multipart uploads left: {:?}",
        c.uploads(&bucket)
    );
    assert!(c.list(&bucket, "").is_empty());
}

/// The gateway stops: each command that needs it gets 451 within the timeout and the
/// session goes on (NOOP, PWD still answer); when it comes back, the same session works.
#[test]
fn the_gateway_down_is_451_per_command_and_sessions_recover() {
    if !ready() {
        return;
    }
    // A cluster of its own: the shared one keeps serving the other tests.
    let c = Ceph::start(1, 1);
    let bucket = c.bucket("outage");
    c.put(&bucket, "kept.bin", b"kept");
    let (_d, port) = serve(&c, &bucket, "", &["--s3-timeout", "2"]);
    let mut s = login(port);
    s.cmd("TYPE I", 200);
    assert_eq!(s.retr("RETR kept.bin"), b"kept");

    c.stop_gateway();
    for line in [
        "SIZE kept.bin",
        "MDTM kept.bin",
        "MKD new",
        "DELE kept.bin",
        "CWD sub",
    ] {
        let t = Instant::now();
        let r = s.cmd(line, 451);
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{line} took {:?}",
            t.elapsed()
        );
        assert!(r.text().contains("unavailable"), "{line}: {:?}", r.lines);
    }
    refused_transfer(&mut s, "RETR kept.bin", 451);
    refused_transfer(&mut s, "STOR up.bin", 451);
    let addr = s.pasv();
    let _data = TcpStream::connect(addr).unwrap();
    s.send("LIST");
    let r = s.read_reply();
    assert!([451, 150, 125].contains(&r.code), "{:?}", r.lines);
    if r.code != 451 {
        s.expect(451);
    }
    s.cmd("NOOP", 200);
    s.cmd("PWD", 257);

    c.start_gateway();
    s.cmd("SIZE kept.bin", 213);
    s.stor("STOR up.bin", b"after");
    assert_eq!(c.get(&bucket, "up.bin").unwrap(), b"after");
    // A new session too.
    let mut t = login(port);
    assert_eq!(t.retr("RETR up.bin"), b"after");
}

/// Wrong credentials, a missing bucket, an unreachable endpoint: the command does not
/// start, and says why.
#[test]
fn a_store_that_refuses_stops_the_start() {
    let Some((c, bucket)) = fresh_bucket("creds") else {
        return;
    };
    let start = |args: &[&str]| -> String {
        let out = ftpdlib()
            .args(["-i", "127.0.0.1", "-p", "0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} started");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let url = format!("s3://{bucket}");
    let err = start(&[
        "--storage",
        &url,
        "--s3-endpoint",
        &c.endpoint,
        "--s3-access-key-id",
        &c.access_key,
        "--s3-secret-access-key",
        "wrong",
    ]);
    assert!(err.contains("can't use the object store"), "{err}");
    assert!(
        err.contains("SignatureDoesNotMatch") || err.contains("403"),
        "{err}"
    );
    let err = start(&[
        "--storage",
        "s3://no-such-bucket-here",
        "--s3-endpoint",
        &c.endpoint,
        "--s3-access-key-id",
        &c.access_key,
        "--s3-secret-access-key",
        &c.secret_key,
    ]);
    assert!(err.contains("NoSuchBucket") || err.contains("404"), "{err}");
    let err = start(&[
        "--storage",
        &url,
        "--s3-endpoint",
        &format!("http://127.0.0.1:{}", free_port()),
        "--s3-timeout",
        "2",
    ]);
    assert!(err.contains("can't use the object store"), "{err}");
    // With credentials, so that the request is made: why it failed, not only that it did.
    let err = start(&[
        "--storage",
        &url,
        "--s3-endpoint",
        &format!("http://127.0.0.1:{}", free_port()),
        "--s3-access-key-id",
        &c.access_key,
        "--s3-secret-access-key",
        &c.secret_key,
        "--s3-timeout",
        "2",
    ]);
    assert!(err.contains("Connection refused"), "{err}");
    let err = start(&["--storage", "http://bucket"]);
    assert!(err.contains("s3://"), "{err}");
}

/// An OSD killed during a 200 MiB upload (three copies of everything): the upload completes
/// whole or fails cleanly, never leaving a truncated object.
#[test]
fn an_osd_killed_during_a_large_upload_leaves_it_whole_or_absent() {
    if !ready() || !require("curl") {
        return;
    }
    let c = Ceph::start(3, 3);
    let bucket = c.bucket("osd");
    let (_d, port) = serve(&c, &bucket, "", &["--s3-timeout", "30"]);
    let src = TempDir::new("s3-osd");
    let body = random_bytes(200 << 20, 42);
    std::fs::write(src.join("big.bin"), &body).unwrap();
    let mut up = curl()
        .arg("-sS")
        .arg("-T")
        .arg(src.join("big.bin"))
        .arg(format!("ftp://u:p@127.0.0.1:{port}/big.bin"))
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(60), || !c
        .uploads(&bucket)
        .is_empty()));
    c.kill_osd(1);
    let end = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(st) = up.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < end, "the upload hung");
        std::thread::sleep(Duration::from_millis(200));
    };
    match c.get(&bucket, "big.bin") {
        Some(stored) => {
            assert!(status.success(), "an object is there but curl failed");
            assert_same(&stored, &body);
            eprintln!("OSD killed mid-upload: the upload completed, whole");
        }
        None => {
            assert!(!status.success(), "curl succeeded but no object");
            eprintln!("OSD killed mid-upload: the upload failed cleanly, no object");
        }
    }
    // Whatever happened, the store takes the upload again.
    run(curl()
        .arg("-T")
        .arg(src.join("big.bin"))
        .arg(format!("ftp://u:p@127.0.0.1:{port}/again.bin")));
    assert_same(&c.get(&bucket, "again.bin").unwrap(), &body);
}
