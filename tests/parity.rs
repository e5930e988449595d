//! The RFC 2389/3659 commands and the rest of pyftpdlib's command set, with exact codes;
//! and the places where ftpdlib is stricter than pyftpdlib on purpose.

mod util;

use std::net::TcpStream;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use ftpdlib::MasqueradeRule;
use util::{TempDir, TestServer};

#[test]
fn feat_lists_extensions_and_mlst_facts() {
    let s = TestServer::start();
    let mut c = s.client();
    let r = c.cmd("FEAT", 211);
    for f in [
        " EPRT",
        " EPSV",
        " MDTM",
        " MFMT",
        " REST STREAM",
        " SIZE",
        " TVFS",
        " UTF8",
    ] {
        assert!(r.lines.iter().any(|l| l == f), "{f} missing: {:?}", r.lines);
    }
    let mlst = r
        .lines
        .iter()
        .find(|l| l.starts_with(" MLST "))
        .expect("MLST feature");
    assert_eq!(
        mlst,
        " MLST type*;perm*;size*;modify*;unique*;unix.mode;unix.uid;unix.gid;"
    );
    assert_eq!(r.lines.last().unwrap(), "211 End FEAT.");
    c.login("user", "pass");
    assert_eq!(
        c.cmd("OPTS MLST type;unix.mode;bogus;", 200).lines,
        ["200 MLST OPTS type;unix.mode;"]
    );
    let r = c.cmd("FEAT", 211);
    assert!(r
        .lines
        .iter()
        .any(|l| l == " MLST type*;perm;size;modify;unique;unix.mode*;unix.uid;unix.gid;"));
    c.cmd("OPTS UTF8 ON", 200);
    c.cmd("OPTS UTF8 OFF", 200);
    // pyftpdlib's errors, word for word.
    assert_eq!(
        c.cmd("OPTS NOSUCH", 501).text(),
        "501 Unsupported command \"NOSUCH\"."
    );
    assert_eq!(
        c.cmd("OPTS MLST bad_fact", 501).text(),
        "501 Invalid argument."
    );
    assert_eq!(
        c.cmd("OPTS MLST type ;", 501).text(),
        "501 Invalid number of arguments."
    );
    c.cmd("OPTS", 501);
}

#[test]
fn mlsd_and_mlst() {
    let s = TestServer::start();
    std::fs::create_dir(s.root.join("dir")).unwrap();
    std::fs::write(s.root.join("file"), b"12345").unwrap();
    let mut c = s.login("user");
    let body = String::from_utf8(c.retr("MLSD")).unwrap();
    let lines: Vec<&str> = body.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{body:?}");
    // Facts in name order, as pyftpdlib writes them.
    let dir = lines
        .iter()
        .find(|l| l.ends_with("; dir"))
        .expect("dir line");
    assert!(dir.starts_with("modify="), "{dir}");
    assert!(dir.contains(";perm=eldfmcp;size="), "{dir}");
    assert!(dir.contains(";type=dir;unique="), "{dir}");
    let file = lines
        .iter()
        .find(|l| l.ends_with("; file"))
        .expect("file line");
    assert!(file.starts_with("modify="), "{file}");
    assert!(
        file.contains(";perm=radfw;size=5;type=file;unique="),
        "{file}"
    );
    let r = c.cmd("MLST file", 250);
    assert_eq!(r.lines.len(), 3, "{:?}", r.lines);
    assert_eq!(r.lines[0], "250-Listing \"/file\":");
    assert!(
        r.lines[1].starts_with(" modify=")
            && r.lines[1].contains(";size=5;type=file;")
            && r.lines[1].ends_with("; /file"),
        "{}",
        r.lines[1]
    );
    assert_eq!(r.lines[2], "250 End MLST.");
    c.cmd("MLST", 250);
    // Missing paths are 550 for every listing command (pyftpdlib answers 501 to MLSD).
    for cmd in [
        "MLSD nope",
        "MLST nope",
        "LIST nope",
        "NLST nope",
        "SIZE nope",
        "MDTM nope",
    ] {
        c.cmd(cmd, 550);
    }
    // MLSD of a file is RFC 3659's 501.
    c.cmd("MLSD file", 501);
    // The read-only user's perm fact shows what it may do.
    let mut ro = s.login("ro");
    let r = ro.cmd("MLST file", 250);
    assert!(r.lines[1].contains(";perm=r;"), "{}", r.lines[1]);
}

#[test]
fn mfmt_and_site_chmod() {
    let s = TestServer::start();
    std::fs::write(s.root.join("f"), b"x").unwrap();
    let mut c = s.login("user");
    assert_eq!(
        c.cmd("MFMT 20200102030405 f", 213).lines,
        ["213 Modify=20200102030405; /f."]
    );
    assert_eq!(c.cmd("MDTM f", 213).lines, ["213 20200102030405"]);
    c.cmd("MFMT 2020 f", 501);
    c.cmd("MFMT 20201302030405 f", 501);
    c.cmd("MFMT 20200230000000 f", 501);
    c.cmd("MFMT 20200102030405", 501);
    c.cmd("MFMT 20200102030405 nope", 550);
    c.cmd("SITE CHMOD 640 f", 200);
    assert_eq!(
        std::fs::metadata(s.root.join("f"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o640
    );
    c.cmd("SITE CHMOD 4755 f", 501);
    c.cmd("SITE CHMOD 9 f", 501);
    c.cmd("SITE CHMOD 644", 501);
    c.cmd("SITE CHMOD 644 nope", 550);
    assert!(c.cmd("SITE HELP", 214).text().contains("CHMOD"));
    assert_eq!(
        c.cmd("SITE NOSUCH", 500).text(),
        "500 Command \"SITE NOSUCH\" not understood."
    );
    c.cmd("SITE", 501);
    let mut ro = s.login("ro");
    ro.cmd("SITE CHMOD 600 f", 550);
    ro.cmd("MFMT 20200102030405 f", 550);
}

#[test]
fn rein_acct_smnt_allo() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.cmd("ALLO 1000", 202);
    c.cmd("ACCT x", 202);
    c.cmd("SMNT /", 502);
    c.cmd("REIN", 220);
    c.cmd("PWD", 530);
    c.login("ro", "pass");
    c.cmd("MKD x", 550);
}

#[test]
fn every_path_command_is_confined_through_symlinks() {
    let s = TestServer::start();
    let outside = TempDir::new("parity-out");
    std::fs::write(outside.join("victim"), b"v").unwrap();
    std::os::unix::fs::symlink(outside.path(), s.root.join("link")).unwrap();
    let mut c = s.login("user");
    c.cmd("MLST link/victim", 550);
    c.cmd("MLSD link", 550);
    c.cmd("MFMT 20200102030405 link/victim", 550);
    c.cmd("SITE CHMOD 777 link/victim", 550);
    c.cmd("APPE link/victim", 550);
    c.cmd("STAT link", 550);
    // STOU makes its name in the current directory, never through a path.
    c.cmd("CWD link", 550);
    let addr = c.pasv();
    let data = TcpStream::connect(addr).unwrap();
    let r = c.cmd("STOU link/x", 125);
    let name = r.lines[0]
        .strip_prefix("125 FILE: ")
        .expect("STOU names its file")
        .to_string();
    // pyftpdlib's shape: the argument's last part, a dot, eight random characters.
    assert!(name.starts_with("x.") && name.len() == 10, "{name}");
    drop(data);
    c.expect(226);
    assert!(s.root.join(&name).exists());
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
    assert_ne!(
        std::fs::metadata(outside.join("victim"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o777
    );
    // The root cannot be removed or renamed, however it is named.
    for root in ["/", ".", "..", "/..", "//"] {
        c.cmd(format!("RMD {root}"), 550);
        c.cmd(format!("RNFR {root}"), 550);
    }
    // No globbing anywhere: a pattern is a literal name.
    std::fs::write(s.root.join("a1"), b"").unwrap();
    c.cmd("LIST a*", 550);
    c.cmd("DELE a*", 550);
    assert!(s.root.join("a1").exists());
}

#[test]
fn utf8_and_undecodable_names() {
    let s = TestServer::start();
    let mut c = s.login("user");
    c.cmd("MKD 日本語", 257);
    assert!(s.root.join("日本語").is_dir());
    c.stor("STOR 日本語/é.txt", b"accent");
    assert_eq!(
        std::fs::read(s.root.join("日本語/é.txt")).unwrap(),
        b"accent"
    );
    assert_eq!(
        c.cmd("CWD 日本語", 250).lines,
        ["250 \"/日本語\" is the current directory."]
    );
    c.cmd("CWD /", 250);
    // A name that is not UTF-8 on disk is listed with its bytes, and the rest of the
    // listing is intact.
    let raw = std::ffi::OsStr::from_bytes(b"latin1-\xe9t\xe9");
    std::fs::write(s.root.path().join(raw), b"").unwrap();
    std::fs::write(s.root.join("plain"), b"").unwrap();
    for cmd in ["LIST", "NLST", "MLSD"] {
        let body = c.retr(cmd);
        let lines: Vec<&[u8]> = body
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 3, "{cmd}: {body:?}");
        assert!(
            lines.iter().any(|l| l.ends_with(b"latin1-\xe9t\xe9\r")),
            "{cmd}"
        );
        assert!(lines.iter().any(|l| l.ends_with(b"plain\r")), "{cmd}");
    }
}

#[test]
fn masquerade_map_picks_the_address_by_client_network() {
    let s = TestServer::start_with(|c, _| {
        c.masquerade_address = Some("203.0.113.7".parse().unwrap());
        c.masquerade_map = vec![MasqueradeRule::parse("127.0.0.0/8=192.0.2.5").unwrap()];
    });
    let mut c = s.login("user");
    let r = c.cmd("PASV", 227);
    assert!(r.lines[0].contains("(192,0,2,5,"), "{:?}", r.lines);
    let s = TestServer::start_with(|c, _| {
        c.masquerade_address = Some("203.0.113.7".parse().unwrap());
        c.masquerade_map = vec![MasqueradeRule::parse("10.0.0.0/8=10.0.0.5").unwrap()];
    });
    let mut c = s.login("user");
    let r = c.cmd("PASV", 227);
    assert!(r.lines[0].contains("(203,0,113,7,"), "{:?}", r.lines);
}
