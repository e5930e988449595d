//! The `ftpdlib` command serving FTPS to real clients: Python's ftplib as pyftpdlib's users
//! have it, rclone with and without TLS session reuse, curl and lftp where the command
//! requires reuse; files compared byte for byte.
//!
//! The command uses the library's test-only certificate in tests/data (see docs/ftps.md).
#![cfg(feature = "tls")]

mod util;

use std::io::Write;
use std::process::Command;

use util::{assert_same, random_bytes, require, run, TempDir};

/// curl that accepts the test certificate.
fn curl() -> Command {
    let mut c = util::curl();
    c.arg("-k");
    c
}

fn data_file(name: &str) -> String {
    format!("{}/../tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

// ---- the command with real clients ------------------------------------------------------

/// The `ftpdlib` command serving `root` to user "user" (password "pass") with the test
/// certificate and `flags`; its port.
fn serve_ftps(root: &TempDir, flags: &[&str]) -> (util::Daemon, u16) {
    let cert = data_file("cert.pem");
    let key = data_file("key.pem");
    let mut args = vec![
        "-d",
        root.path().to_str().unwrap(),
        "-w",
        "-u",
        "user",
        "-P",
        "pass",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    args.extend_from_slice(flags);
    util::serve_daemon(&args)
}

/// Python's ftplib.FTP_TLS as pyftpdlib's users have it: prot_p(), no session resumption,
/// TLS forced to one version. Uploads, downloads and lists; then uploads once more and
/// closes that data connection with a TCP FIN and no close_notify (unwrap() skipped).
const PY_PLAIN_FTPS: &str = r#"
import ftplib, io, socket, ssl, sys
port, version, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
ctx.minimum_version = ctx.maximum_version = v
ftp = ftplib.FTP_TLS(context=ctx, timeout=60)
ftp.connect("127.0.0.1", port)
ftp.login("user", "pass")
ftp.prot_p()
assert ftp.sock.version() == "TLSv" + version, ftp.sock.version()
body = sys.stdin.buffer.read()
ftp.storbinary("STOR " + name, io.BytesIO(body))
got = io.BytesIO()
ftp.retrbinary("RETR " + name, got.write)
assert got.getvalue() == body, (len(got.getvalue()), len(body))
assert name in ftp.nlst(), ftp.nlst()
lines = []
ftp.retrlines("LIST", lines.append)
assert any(l.endswith(" " + name) for l in lines), lines
# The same upload, ended without close_notify (in binary: LIST left TYPE A).
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("STOR fin-" + name)
conn.sendall(body)
conn.shutdown(socket.SHUT_WR)  # SSLSocket.shutdown drops TLS: a bare FIN
conn.close()
assert ftp.voidresp().startswith("226"), "no 226"
assert ftp.size("fin-" + name) == len(body)
ftp.quit()
print("ok")
"#;

#[test]
fn python_ftplib_against_the_command_with_only_a_certificate() {
    if !require("python3") {
        return;
    }
    let root = TempDir::new("py-cmd");
    let (_daemon, port) = serve_ftps(&root, &[]);
    for version in ["1.2", "1.3"] {
        for (i, n) in [0usize, 1, 300_000, 4 << 20].into_iter().enumerate() {
            let body = random_bytes(n, 900 + i as u64);
            let name = format!("py{version}-{n}.bin");
            let mut child = Command::new("python3")
                .args(["-c", PY_PLAIN_FTPS])
                .arg(port.to_string())
                .args([version, &name])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(&body).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "python, TLS {version}, {n} bytes: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_same(&std::fs::read(root.join(&name)).unwrap(), &body);
            assert_same(
                &std::fs::read(root.join(&format!("fin-{name}"))).unwrap(),
                &body,
            );
        }
    }
}

#[test]
fn python_ftplib_without_resumption_gets_the_522_on_the_control_connection() {
    if !require("python3") {
        return;
    }
    let root = TempDir::new("py-522");
    std::fs::write(root.join("f.txt"), b"data").unwrap();
    let (_daemon, port) = serve_ftps(&root, &["--tls-session-reuse-required"]);
    let script = r#"
import ftplib, io, ssl, sys
port, version = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
v = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}[version]
ctx.minimum_version = ctx.maximum_version = v
ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
ftp.connect("127.0.0.1", port)
ftp.login("user", "pass")
ftp.prot_p()
def reply_after(transfer):
    try:
        transfer()
    except ftplib.error_perm as e:
        return str(e)
    except OSError:
        # The data connection failed first (ssl.SSLEOFError is an OSError); the reason
        # waits on the control connection.
        try:
            return ftp.getresp()
        except ftplib.error_perm as e:
            return str(e)
    return "the transfer went through"
for what, transfer in [
    ("STOR", lambda: ftp.storbinary("STOR up.bin", io.BytesIO(b"x" * 200000))),
    ("RETR", lambda: ftp.retrbinary("RETR f.txt", lambda b: None)),
    ("LIST", lambda: ftp.retrlines("LIST", lambda l: None)),
]:
    got = reply_after(transfer)
    want = "522 Data connection must resume the TLS session of the control connection."
    assert got == want, (what, got)
    assert ftp.voidcmd("NOOP").startswith("200")
ftp.quit()
print("ok")
"#;
    for version in ["1.2", "1.3"] {
        let out = run(Command::new("python3")
            .args(["-c", script])
            .arg(port.to_string())
            .arg(version));
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "ok",
            "TLS {version}"
        );
    }
}

/// Runs rclone against `port` (explicit FTPS, user "user"), bounded in time and without
/// retries, so that a refused data connection fails the run rather than being retried.
fn rclone(port: u16, pass: &str, config: &std::path::Path, extra: &[&str], args: &[&str]) {
    run(Command::new("rclone")
        .env("RCLONE_CONFIG", config)
        .args(args)
        .args(["--ftp-host", "127.0.0.1", "--ftp-port", &port.to_string()])
        .args(["--ftp-user", "user", "--ftp-pass", pass])
        .args(["--ftp-explicit-tls", "--ftp-no-check-certificate"])
        .args(["--retries", "1", "--low-level-retries", "1"])
        .args(["--contimeout", "10s", "--timeout", "30s", "-q"])
        .args(extra));
}

#[test]
fn rclone_with_and_without_session_reuse() {
    if !require("rclone") {
        return;
    }
    let local = TempDir::new("rclone");
    let config = local.join("rclone.conf");
    let pass = run(Command::new("rclone")
        .env("RCLONE_CONFIG", &config)
        .args(["obscure", "pass"]))
    .stdout;
    let pass = String::from_utf8(pass).unwrap().trim().to_string();
    // Enough files for rclone's several control connections (4 transfers, 8 checkers).
    let up = local.join("up");
    std::fs::create_dir(&up).unwrap();
    let files = util::write_files(&up, &[0, 1, 1000, 64 * 1024, 300_000, 2 << 20], 600);
    let more = (0..10)
        .map(|i| {
            let name = format!("more-{i}.bin");
            let body = random_bytes(20_000 + i * 3_000, 650 + i as u64);
            std::fs::write(up.join(&name), &body).unwrap();
            (name, body)
        })
        .collect::<Vec<_>>();
    for reuse in [false, true] {
        let root = TempDir::new("rclone-root");
        let flags: &[&str] = if reuse {
            &["--tls-session-reuse-required"]
        } else {
            &[]
        };
        let (_daemon, port) = serve_ftps(&root, flags);
        for (version, extra) in [("1.3", &[][..]), ("1.2", &["--ftp-disable-tls13"][..])] {
            let what = format!("reuse required {reuse}, TLS {version}");
            let dir = format!(":ftp:v{version}");
            rclone(
                port,
                &pass,
                &config,
                extra,
                &["copy", up.to_str().unwrap(), &dir],
            );
            for (name, body) in files.iter().chain(&more) {
                let stored = std::fs::read(root.join(&format!("v{version}/{name}")))
                    .unwrap_or_else(|e| panic!("{what}: {name}: {e}"));
                assert_same(&stored, body);
            }
            let down = local.join(&format!("down-{reuse}-{version}"));
            rclone(
                port,
                &pass,
                &config,
                extra,
                &["copy", &dir, down.to_str().unwrap()],
            );
            for (name, body) in files.iter().chain(&more) {
                assert_same(&std::fs::read(down.join(name)).unwrap(), body);
            }
            let out = Command::new("rclone")
                .env("RCLONE_CONFIG", &config)
                .args(["lsf", &dir])
                .args(["--ftp-host", "127.0.0.1", "--ftp-port", &port.to_string()])
                .args(["--ftp-user", "user", "--ftp-pass", &pass])
                .args(["--ftp-explicit-tls", "--ftp-no-check-certificate"])
                .args(["--retries", "1", "--low-level-retries", "1"])
                .args(["--contimeout", "10s", "--timeout", "30s"])
                .args(extra)
                .output()
                .unwrap();
            assert!(out.status.success(), "{what}: lsf");
            let listed = String::from_utf8_lossy(&out.stdout);
            for (name, _) in files.iter().chain(&more) {
                assert!(listed.lines().any(|l| l == name), "{what}: {listed}");
            }
        }
    }
}

#[test]
fn curl_and_lftp_when_the_command_requires_session_reuse() {
    let root = TempDir::new("reuse-cmd");
    let local = TempDir::new("reuse-local");
    let body = random_bytes(3 << 20, 66);
    std::fs::write(root.join("down.bin"), &body).unwrap();
    std::fs::write(local.join("up.bin"), &body).unwrap();
    let (_daemon, port) = serve_ftps(&root, &["--tls-session-reuse-required"]);
    if require("curl") {
        let url = |p: &str| format!("ftp://user:pass@127.0.0.1:{port}/{p}");
        for tls_max in ["1.2", "1.3"] {
            let curl = || {
                let mut c = curl();
                c.args(["--ssl-reqd", "--tls-max", tls_max]);
                c
            };
            assert_same(&run(curl().arg(url("down.bin"))).stdout, &body);
            let name = format!("curl-{tls_max}.bin");
            run(curl().arg("-T").arg(local.join("up.bin")).arg(url(&name)));
            assert_same(&std::fs::read(root.join(&name)).unwrap(), &body);
            let list = String::from_utf8(run(curl().arg(url(""))).stdout).unwrap();
            assert!(list.contains("down.bin"), "{list}");
        }
    }
    if require("lftp") {
        let script = format!(
            "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ftp:ssl-protect-list true; \
             set ssl:verify-certificate no; set net:max-retries 1; set net:timeout 20; \
             get down.bin -o {dir}/lftp-down.bin; put {dir}/up.bin -o lftp-up.bin; cls -1; bye",
            dir = local.path().display()
        );
        let out = run(Command::new("lftp")
            .args(["-u", "user,pass", "-e", &script])
            .arg(format!("ftp://127.0.0.1:{port}")));
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.contains("lftp-up.bin"), "{listing}");
        assert_same(&std::fs::read(local.join("lftp-down.bin")).unwrap(), &body);
        assert_same(&std::fs::read(root.join("lftp-up.bin")).unwrap(), &body);
    }
}
