//! The path acted on is the path the client sent, byte for byte: names that are not UTF-8
//! reach the disk unchanged (two different Latin-1 names are two files, never one), every
//! command that names a path keeps them, and a name that starts with "-" is a name.

mod util;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use util::*;

/// `name` (bytes) under `dir`.
fn on_disk(dir: &TempDir, name: &[u8]) -> PathBuf {
    dir.path().join(OsStr::from_bytes(name))
}

/// `verb` followed by a space and the raw `name`.
fn line(verb: &str, name: &[u8]) -> Vec<u8> {
    let mut l = format!("{verb} ").into_bytes();
    l.extend_from_slice(name);
    l
}

#[test]
fn latin1_names_are_distinct_files_and_come_back_the_same() {
    let s = TestServer::start();
    let mut c = s.login("user");
    // caf\xe9 and caf\xe8: decoded lossily, both would be caf\u{fffd}, one file.
    c.stor(line("STOR", b"caf\xe9.txt"), b"e-acute");
    c.stor(line("STOR", b"caf\xe8.txt"), b"e-grave");
    assert_eq!(
        std::fs::read(on_disk(&s.root, b"caf\xe9.txt")).unwrap(),
        b"e-acute"
    );
    assert_eq!(
        std::fs::read(on_disk(&s.root, b"caf\xe8.txt")).unwrap(),
        b"e-grave"
    );
    assert_eq!(c.retr(line("RETR", b"caf\xe9.txt")), b"e-acute");
    assert_eq!(c.retr(line("RETR", b"caf\xe8.txt")), b"e-grave");
    // Listed back with the same bytes, sorted.
    assert_eq!(c.retr("NLST"), b"caf\xe8.txt\r\ncaf\xe9.txt\r\n");
    let mlsd = c.retr("MLSD");
    assert!(
        mlsd.windows(11).any(|w| w == b" caf\xe9.txt\r\n"),
        "{}",
        String::from_utf8_lossy(&mlsd)
    );
}

#[test]
fn every_path_command_acts_on_the_exact_bytes() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let dir: &[u8] = b"d\xe9j\xe0";
    // MKD, CWD, a STOR inside, PWD, CDUP.
    c.cmd(line("MKD", dir), 257);
    assert!(on_disk(&s.root, dir).is_dir());
    c.cmd(line("CWD", dir), 250);
    c.stor("STOR inner", b"in");
    assert_eq!(
        std::fs::read(on_disk(&s.root, b"d\xe9j\xe0/inner")).unwrap(),
        b"in"
    );
    // The current directory keeps its bytes: a relative RETR finds the file.
    assert_eq!(c.retr("RETR inner"), b"in");
    c.cmd("CDUP", 250);
    c.cmd("PWD", 257);
    // APPE, SIZE, MDTM, MFMT, SITE CHMOD, MLST, STAT, NLST of the file itself.
    let f: &[u8] = b"f\xff\xfe";
    c.stor(line("STOR", f), b"12");
    c.stor(line("APPE", f), b"345");
    assert_eq!(std::fs::read(on_disk(&s.root, f)).unwrap(), b"12345");
    assert_eq!(c.cmd(line("SIZE", f), 213).text(), "213 5");
    c.cmd(line("MDTM", f), 213);
    let mut mfmt = b"MFMT 20200102030405 ".to_vec();
    mfmt.extend_from_slice(f);
    c.cmd(mfmt, 213);
    let mtime = std::fs::metadata(on_disk(&s.root, f)).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mtime(&mtime), 1_577_934_245);
    let mut chmod = b"SITE CHMOD 600 ".to_vec();
    chmod.extend_from_slice(f);
    c.cmd(chmod, 200);
    let mode = std::fs::metadata(on_disk(&s.root, f)).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    c.cmd(line("MLST", f), 250);
    c.cmd(line("STAT", f), 213);
    assert_eq!(c.retr(line("NLST", f)), [f, b"\r\n"].concat());
    // RNFR/RNTO, DELE, RMD.
    let g: &[u8] = b"g\xe9";
    c.cmd(line("RNFR", f), 350);
    c.cmd(line("RNTO", g), 250);
    assert!(!on_disk(&s.root, f).exists() && on_disk(&s.root, g).is_file());
    c.cmd(line("DELE", g), 250);
    assert!(!on_disk(&s.root, g).exists());
    c.cmd(line("DELE", b"d\xe9j\xe0/inner"), 250);
    c.cmd(line("RMD", dir), 250);
    assert!(!on_disk(&s.root, dir).exists());
    // STOU keeps the bytes of the name it is given.
    let stou = c.pasv();
    let data = std::net::TcpStream::connect(stou).unwrap();
    c.send(line("STOU", b"u\xe9"));
    let r = c.read_reply();
    assert!(r.code == 125 || r.code == 150, "{:?}", r.lines);
    drop(data);
    c.expect(226);
    let made: Vec<_> = std::fs::read_dir(s.root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.as_bytes().starts_with(b"u\xe9."))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
}

#[test]
fn a_name_that_starts_with_a_dash_is_a_name() {
    let s = TestServer::start();
    std::fs::write(s.root.join("top"), b"").unwrap();
    let mut c = s.login("user");
    c.cmd("MKD -dash", 257);
    std::fs::write(s.root.join("-dash/inside"), b"").unwrap();
    // The directory called "-dash" is listed, not the current one.
    assert_eq!(c.retr("NLST -dash"), b"inside\r\n");
    assert!(String::from_utf8(c.retr("LIST -dash"))
        .unwrap()
        .ends_with(" inside\r\n"));
    // Where nothing has that name, the argument is ls-style flags before a path.
    assert_eq!(c.retr("NLST -la"), b"-dash\r\ntop\r\n");
    assert_eq!(c.retr("NLST -1 -dash"), b"inside\r\n");
    assert_eq!(
        String::from_utf8(c.retr("LIST -la"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // A flag-looking name that exists nowhere, after the flags too: 550.
    c.pasv();
    c.cmd("NLST -x nowhere", 550);
    // MLSD takes no flags (RFC 3659): "-dash" is the directory.
    let mlsd = String::from_utf8(c.retr("MLSD -dash")).unwrap();
    assert!(mlsd.ends_with("; inside\r\n"), "{mlsd}");
    // Other commands never strip anything.
    c.cmd("CWD -dash", 250);
    c.cmd("CDUP", 250);
    c.cmd("RMD -dash", 550);
    c.cmd("DELE -dash/inside", 250);
    c.cmd("RMD -dash", 250);
}

/// A name the disk can't hold (a component over 255 bytes): the commands that make a name
/// answer 553, "File name not allowed" (RFC 959 gives 553 to STOR, APPE, MKD and RNTO);
/// the others answer 550, as for any name that isn't there.
#[test]
fn a_name_too_long_is_553_where_a_name_is_made_and_550_elsewhere() {
    let s = TestServer::start();
    let mut c = s.login("user");
    let long = "n".repeat(300);
    c.cmd(format!("MKD {long}"), 553);
    for verb in ["STOR", "APPE"] {
        let addr = c.pasv();
        let _data = std::net::TcpStream::connect(addr).unwrap();
        c.cmd(format!("{verb} {long}"), 553);
    }
    c.stor("STOR short", b"x");
    c.cmd("RNFR short", 350);
    c.cmd(format!("RNTO {long}"), 553);
    for verb in ["DELE", "RMD", "SIZE", "MDTM", "CWD"] {
        c.cmd(format!("{verb} {long}"), 550);
    }
    c.cmd(format!("RNFR {long}"), 550);
    let addr = c.pasv();
    let _data = std::net::TcpStream::connect(addr).unwrap();
    c.cmd(format!("RETR {long}"), 550);
    assert_eq!(c.retr("RETR short"), b"x");
}
