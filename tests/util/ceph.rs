//! A throw-away Ceph cluster whose RADOS Gateway speaks S3 on a loopback port, for the tests
//! of object storage: 1 monitor, 1 manager, memstore OSDs (the data lives in their memory)
//! and radosgw, started by tests/ceph/start-ceph.sh (see there), with an S3 user
//! (`CEPHTESTAK`/`CEPHTESTSECRET`).
//!
//! [`shared`] gives one cluster per test process, started on first use (about 20 s and some
//! 500 MB of memory, 300 MB of it the manager's) and stopped when the process exits;
//! [`Ceph::start`] a cluster of the test's own, stopped when dropped (for tests that break
//! it). The test side talks S3 with python3 and boto3 (tests/ceph/s3.py), one process per
//! call.
//!
//! Every method panics, with what failed, when the cluster or the call does; every wait is
//! bounded.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use super::{free_port, have};

/// The cluster script; each cluster runs its own copy from its directory, so that the
/// watcher can still stop it once the test binary has gone.
const SCRIPT: &str = include_str!("../ceph/start-ceph.sh");
/// The S3 calls, run with `python3 -c`.
const S3_PY: &str = include_str!("../ceph/s3.py");

/// How long a cluster may take to start before the start fails.
pub const START_LIMIT: Duration = Duration::from_secs(90);
/// How long one S3 call, or starting the gateway again, may take.
pub const CALL_LIMIT: Duration = Duration::from_secs(120);
/// How long a killed daemon may take to be gone, and a killed OSD to be marked down.
const GONE_LIMIT: Duration = Duration::from_secs(60);

/// The programs the cluster and the S3 calls need (boto3 is checked apart).
const TOOLS: &[&str] = &[
    "ceph-mon",
    "ceph-mgr",
    "ceph-osd",
    "radosgw",
    "radosgw-admin",
    "ceph",
    "monmaptool",
    "curl",
    "python3",
    "setsid",
    "timeout",
];

/// What is missing to run a cluster: programs, and python3-boto3.
pub fn missing() -> Vec<String> {
    let mut out: Vec<String> = TOOLS
        .iter()
        .filter(|t| !have(t))
        .map(|t| t.to_string())
        .collect();
    let boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !boto3 {
        out.push("python3-boto3".into());
    }
    out
}

/// Whether the Ceph programs and boto3 are installed.
pub fn available() -> bool {
    missing().is_empty()
}

/// Like `util::require` for a cluster: fails under CI (env CI set) when something is
/// missing; elsewhere says so and returns false.
pub fn require() -> bool {
    let missing = missing();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("a Ceph cluster is required under CI, missing: {missing:?}; .ci/run installs it");
    }
    eprintln!("skipping: no Ceph cluster, missing {missing:?} (.ci/run installs it)");
    false
}

/// The cluster of this test process: 3 OSDs, each object on all three (so that one may be
/// killed), started on first use and stopped, its directory removed, by a watcher process
/// once the test process has exited. Panics when it did not start (in every test that asks,
/// with the same message).
pub fn shared() -> &'static Ceph {
    static SHARED: OnceLock<Result<Ceph, String>> = OnceLock::new();
    match SHARED.get_or_init(|| Ceph::launch(3, 3)) {
        Ok(ceph) => ceph,
        Err(e) => panic!("the shared Ceph cluster did not start: {e}"),
    }
}

/// A running cluster.
pub struct Ceph {
    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// The cluster's directory: ceph.conf, the daemons' pid files (`<name>.pid`) and logs
    /// (`log/<name>.log`), the script.
    pub dir: PathBuf,
    /// The gateway's port on 127.0.0.1.
    pub rgw_port: u16,
    /// How long the cluster took to start.
    pub start_time: Duration,
    /// Waits for the test process to exit, then stops the cluster and removes `dir`.
    watcher: Mutex<Option<Child>>,
}

impl Ceph {
    /// A cluster of the caller's own, with `osds` OSDs keeping `replicas` copies of each
    /// object (1 to `osds`); stopped, its directory removed, when dropped (or, should the
    /// test process die first, when it exits). Panics, with the end of the cluster's logs,
    /// when it does not start within [`START_LIMIT`].
    pub fn start(replicas: u32, osds: u32) -> Ceph {
        Self::launch(replicas, osds).unwrap_or_else(|e| panic!("{e}"))
    }

    fn launch(replicas: u32, osds: u32) -> Result<Ceph, String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        assert!(
            (1..=osds).contains(&replicas),
            "{replicas} replicas on {osds} OSDs"
        );
        let began = Instant::now();
        let dir = std::env::temp_dir().join(format!(
            "ftpdlib-ceph-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("log")).map_err(|e| format!("{dir:?}: {e}"))?;
        std::fs::write(dir.join("start-ceph.sh"), SCRIPT).map_err(|e| format!("{dir:?}: {e}"))?;
        // From here on, a failure drops `ceph`, which stops whatever did start.
        let mut ceph = Ceph {
            endpoint: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            rgw_port: free_port(),
            start_time: Duration::ZERO,
            watcher: Mutex::new(None),
            dir,
        };
        ceph.watch()?;
        let out =
            std::fs::File::create(ceph.dir.join("log/start.out")).map_err(|e| e.to_string())?;
        let err =
            std::fs::File::create(ceph.dir.join("log/start.err")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new("bash");
        cmd.arg(ceph.dir.join("start-ceph.sh"))
            .arg(&ceph.dir)
            .arg(ceph.rgw_port.to_string())
            .arg(osds.to_string())
            .env("REPLICAS", replicas.to_string())
            .env("MON_PORT", free_port().to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let status = run_bounded(&mut cmd, START_LIMIT)
            .map_err(|e| format!("start-ceph.sh {e}\n{}", ceph.log_tail()))?;
        if !status.success() {
            return Err(format!(
                "start-ceph.sh failed ({status})\n{}",
                ceph.log_tail()
            ));
        }
        let said = std::fs::read_to_string(ceph.dir.join("log/start.out")).unwrap_or_default();
        let get = |name: &str| {
            said.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| format!("start-ceph.sh did not say {name}: {said:?}"))
        };
        ceph.endpoint = get("S3_ENDPOINT")?;
        ceph.access_key = get("S3_ACCESS_KEY")?;
        ceph.secret_key = get("S3_SECRET_KEY")?;
        ceph.start_time = began.elapsed();
        Ok(ceph)
    }

    /// Starts the watcher: a process of its own session (so that an interrupted `cargo
    /// test` does not take it along) that polls this process every second and, once it is
    /// gone, stops the cluster and removes its directory.
    fn watch(&self) -> Result<(), String> {
        let dir = self.dir.to_str().ok_or("temp dir is not UTF-8")?;
        let child = Command::new("setsid")
            .args([
                "sh",
                "-c",
                "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; \
                 exec bash \"$2/start-ceph.sh\" --stop \"$2\" --rm",
                "ceph-watcher",
            ])
            .arg(std::process::id().to_string())
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("setsid: {e}"))?;
        *self.watcher.lock().unwrap() = Some(child);
        Ok(())
    }

    /// The configuration file, for the `ceph`, `rados` and `radosgw-admin` tools (`-c`).
    pub fn conf(&self) -> PathBuf {
        self.dir.join("ceph.conf")
    }

    /// The end of the cluster's logs (the start script's errors, then the last lines of each
    /// daemon's log), for failure messages.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        let mut files = vec![self.dir.join("log/start.err")];
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("log"))
            .map(|d| d.filter_map(|e| Some(e.ok()?.path())).collect())
            .unwrap_or_default();
        logs.retain(|p| p.extension().is_some_and(|e| e == "log"));
        logs.sort();
        files.extend(logs);
        for (i, f) in files.iter().enumerate() {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let n = if i == 0 { 40 } else { 8 };
            out += &format!("--- {}:\n", f.display());
            for l in &lines[lines.len().saturating_sub(n)..] {
                out += l;
                out.push('\n');
            }
        }
        out
    }

    /// The environment for an S3 client of this cluster: AWS_ACCESS_KEY_ID,
    /// AWS_SECRET_ACCESS_KEY, AWS_REGION (us-east-1) and AWS_ENDPOINT_URL (the gateway).
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", self.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Runs tests/ceph/s3.py with `args`, `stdin` on its standard input; its output, which
    /// may have failed. Panics when python does not finish within [`CALL_LIMIT`].
    fn s3(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(S3_PY).args(args);
        cmd.envs(self.aws_env())
            // Nothing from the user's own AWS settings; the checksums of recent boto3 only
            // when S3 requires them (older gateways reject them).
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
            .env("AWS_RESPONSE_CHECKSUM_VALIDATION", "when_required");
        output_bounded(&mut cmd, stdin, CALL_LIMIT).unwrap_or_else(|e| panic!("s3.py {args:?} {e}"))
    }

    /// Like [`s3`](Self::s3), panicking unless the call succeeded; its standard output.
    fn s3_ok(&self, args: &[&str], stdin: &[u8]) -> Vec<u8> {
        let out = self.s3(args, stdin);
        assert!(
            out.status.success(),
            "s3.py {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Creates a bucket with a name of its own, made of `hint` (lowercased, other characters
    /// than letters, digits and dashes dropped), the process id and a counter; returns the
    /// name.
    pub fn bucket(&self, hint: &str) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut hint: String = hint
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        hint.truncate(40);
        let name = format!(
            "t-{}-{}-{}",
            hint.trim_matches('-'),
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        )
        .replace("--", "-");
        self.s3_ok(&["mb", &name], b"");
        name
    }

    /// The keys under `prefix` in `bucket`, with their sizes in bytes, in S3's order (by
    /// UTF-8 bytes); every page of ListObjectsV2.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<(String, u64)> {
        self.list_paged(bucket, prefix, 1000)
    }

    /// Like [`list`](Self::list), asking for pages of `page` keys (so that continuation
    /// tokens come into play).
    pub fn list_paged(&self, bucket: &str, prefix: &str, page: u32) -> Vec<(String, u64)> {
        let out = self.s3_ok(&["ls", bucket, &hex(prefix), &page.to_string()], b"");
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| {
                let (size, key) = l.split_once(' ').unwrap_or_else(|| panic!("ls: {l:?}"));
                (
                    unhex(key),
                    size.parse().unwrap_or_else(|_| panic!("ls: {l:?}")),
                )
            })
            .collect()
    }

    /// The object's bytes, or None when `bucket` has no `key`.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let args = ["get", bucket, &hex(key)];
        let out = self.s3(&args, b"");
        match out.status.code() {
            Some(0) => Some(out.stdout),
            Some(3) => None,
            _ => panic!(
                "s3.py {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// Writes an object (one PutObject).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        self.s3_ok(&["put", bucket, &hex(key)], body);
    }

    /// The keys of the multipart uploads begun and neither completed nor aborted in
    /// `bucket` (ListMultipartUploads, every page); a key twice if it has two.
    pub fn uploads(&self, bucket: &str) -> Vec<String> {
        let out = self.s3_ok(&["uploads", bucket], b"");
        String::from_utf8_lossy(&out)
            .lines()
            .map(|l| unhex(l.split(' ').next().unwrap_or_default()))
            .collect()
    }

    /// Runs Python `code` with `s3` (a boto3 client of this cluster), `sys` and `args` (a
    /// list of `args`) defined; its standard output. Panics when it fails.
    pub fn boto3(&self, code: &str, args: &[&str]) -> String {
        let mut all = vec!["exec", code];
        all.extend_from_slice(args);
        String::from_utf8_lossy(&self.s3_ok(&all, b"")).into_owned()
    }

    /// The pid of the daemon `name` (mon.a, mgr.x, osd.N, client.rgw) if it runs.
    fn pid(&self, name: &str) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        running_with(pid, &self.conf()).then_some(pid)
    }

    /// Kills the daemon `name` (SIGKILL) and waits until it is gone; false if it did not run.
    fn kill(&self, name: &str) -> bool {
        let Some(pid) = self.pid(name) else {
            return false;
        };
        // SAFETY: kill(2) has no memory effects; the pid is a daemon of this cluster (its
        // command line names our ceph.conf).
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let conf = self.conf();
        assert!(
            wait(GONE_LIMIT, || !running_with(pid, &conf)),
            "{name} (pid {pid}) still runs {GONE_LIMIT:?} after SIGKILL"
        );
        true
    }

    /// Kills the gateway (SIGKILL, as a crash would) and waits until it is gone and its port
    /// refuses connections. Panics if it was not running.
    pub fn stop_gateway(&self) {
        assert!(self.kill("client.rgw"), "the gateway was not running");
        let port = self.rgw_port;
        assert!(
            wait(GONE_LIMIT, || TcpStream::connect(("127.0.0.1", port))
                .is_err()),
            "127.0.0.1:{port} still accepts connections after the gateway was killed"
        );
    }

    /// Starts the gateway again, on the same port, and waits until it answers S3. Panics,
    /// with the end of the logs, when it does not within [`CALL_LIMIT`].
    pub fn start_gateway(&self) {
        let mut cmd = Command::new("bash");
        cmd.arg(self.dir.join("start-ceph.sh"))
            .arg("--rgw")
            .arg(&self.dir)
            .stdin(Stdio::null());
        let out = output_bounded(&mut cmd, b"", CALL_LIMIT)
            .unwrap_or_else(|e| panic!("start-ceph.sh --rgw {e}\n{}", self.log_tail()));
        assert!(
            out.status.success(),
            "start-ceph.sh --rgw failed ({}): {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail()
        );
    }

    /// Kills OSD `id` (SIGKILL; ids count from 0) and waits until it is gone and the monitor
    /// has marked it down (within a minute: about a second when a peer finds its port
    /// closed), so that the next request finds the cluster without it. Panics if it was not
    /// running.
    pub fn kill_osd(&self, id: u32) {
        let name = format!("osd.{id}");
        assert!(self.kill(&name), "{name} was not running");
        let down = format!("{name} down");
        let conf = self.conf();
        let marked = wait(GONE_LIMIT, || {
            Command::new("timeout")
                .args(["20", "ceph", "--connect-timeout", "10", "-c"])
                .arg(&conf)
                .args(["osd", "dump"])
                .stderr(Stdio::null())
                .output()
                .is_ok_and(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .any(|l| l.starts_with(&down))
                })
        });
        assert!(
            marked,
            "{name} not marked down {GONE_LIMIT:?} after it was killed\n{}",
            self.log_tail()
        );
    }

    /// The resident memory of the cluster's daemons, in bytes (from /proc).
    pub fn rss(&self) -> u64 {
        let mut total = 0;
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(daemon) = name.strip_suffix(".pid") else {
                continue;
            };
            let Some(pid) = self.pid(daemon) else {
                continue;
            };
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let kb: u64 = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            total += kb * 1024;
        }
        total
    }

    /// Stops every daemon (SIGKILL) and removes the directory; bounded by the script (10 s).
    fn stop(&self) {
        let mut cmd = Command::new("bash");
        cmd.arg(self.dir.join("start-ceph.sh"))
            .arg("--stop")
            .arg(&self.dir)
            .arg("--rm")
            .stdin(Stdio::null());
        match output_bounded(&mut cmd, b"", CALL_LIMIT) {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "start-ceph.sh --stop {:?}: {}",
                self.dir,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("start-ceph.sh --stop {:?} {e}", self.dir),
        }
    }
}

impl Drop for Ceph {
    fn drop(&mut self) {
        self.stop();
        let watcher = self.watcher.get_mut().map(Option::take);
        if let Ok(Some(mut w)) = watcher {
            let _ = w.kill();
            let _ = w.wait();
        }
        // The script removed it, unless it could not run at all.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `pid` runs (not a zombie) with `conf` on its command line.
fn running_with(pid: i32, conf: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let conf = conf.as_os_str().as_encoded_bytes();
    cmdline.windows(conf.len()).any(|w| w == conf)
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Waits until `f` holds, checking every 100 ms, for at most `limit`.
fn wait(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs `cmd` in a process group of its own; its exit status, or an error when it did not
/// finish within `limit` (the group is then killed).
fn run_bounded(cmd: &mut Command, limit: Duration) -> Result<ExitStatus, String> {
    let mut child = cmd
        .process_group(0)
        .spawn()
        .map_err(|e| format!("did not run: {e}"))?;
    let end = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                kill_group(&child);
                let _ = child.wait();
                return Err(format!("did not finish within {limit:?}"));
            }
            Err(e) => return Err(format!("wait: {e}")),
        }
    }
}

/// Runs `cmd` in a process group of its own with `stdin` on its standard input; its output,
/// or an error when it did not finish within `limit` (the group is then killed).
fn output_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Result<Output, String> {
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("did not run: {e}"))?;
    let pid = child.id();
    let mut input = child.stdin.take();
    let body = stdin.to_vec();
    // The input from its own thread, so that a child writing much before it reads all of it
    // does not stall both.
    let writer = std::thread::spawn(move || {
        if let Some(i) = input.as_mut() {
            let _ = i.write_all(&body);
        }
    });
    let (tx, rx) = mpsc::channel();
    let group = ChildGroup(pid);
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(limit) {
        Ok(out) => out.map_err(|e| format!("wait: {e}")),
        Err(_) => {
            group.kill();
            let _ = rx.recv();
            Err(format!("did not finish within {limit:?}"))
        }
    };
    let _ = writer.join();
    out
}

/// A process group led by a child spawned with `process_group(0)`.
struct ChildGroup(u32);

impl ChildGroup {
    fn kill(&self) {
        // SAFETY: kill(2) has no memory effects; the group is the one our child leads (its
        // pid is not reaped, hence not reused, until we wait for it).
        unsafe { libc::kill(-(self.0 as i32), libc::SIGKILL) };
    }
}

fn kill_group(child: &Child) {
    ChildGroup(child.id()).kill();
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(h: &str) -> String {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap_or_else(|_| panic!("hex {h:?}")))
        .collect();
    String::from_utf8(bytes).unwrap_or_else(|_| panic!("not UTF-8: {h:?}"))
}
