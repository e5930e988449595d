//! The Ceph harness (tests/util/ceph.rs) that the object-storage tests stand on: a real
//! cluster, S3 through its gateway with boto3, the gateway killed and started again, an OSD
//! killed, and nothing left behind. With the object-storage tests, under
//! `cargo test --features opendal` (`.ci/run` runs it): the plain `cargo test` needs no Ceph.
#![cfg(feature = "opendal")]

mod util;

use std::net::TcpStream;
use std::time::Instant;

use util::ceph::{self, Ceph};
use util::{assert_same, random_bytes};

#[test]
fn shared_cluster_serves_s3_and_survives_a_gateway_restart() {
    if !ceph::require() {
        return;
    }
    let c = ceph::shared();
    eprintln!(
        "shared cluster: started in {:.1} s, {} MiB resident",
        c.start_time.as_secs_f64(),
        c.rss() >> 20
    );
    assert!(
        c.endpoint.starts_with("http://127.0.0.1:"),
        "{}",
        c.endpoint
    );
    let env = c.aws_env();
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(var("AWS_ENDPOINT_URL"), Some(c.endpoint.as_str()));
    assert_eq!(var("AWS_ACCESS_KEY_ID"), Some("CEPHTESTAK"));
    assert_eq!(var("AWS_SECRET_ACCESS_KEY"), Some("CEPHTESTSECRET"));
    assert_eq!(var("AWS_REGION"), Some("us-east-1"));

    let began = Instant::now();
    let b = c.bucket("Harness_Test");
    let first_bucket = began.elapsed();
    assert!(b.starts_with("t-harnesstest-"), "{b}");
    assert_ne!(c.bucket("harness-test"), b, "bucket names are unique");
    let objects: [(&str, Vec<u8>); 3] = [
        ("plain.txt", b"hello\n".to_vec()),
        ("dir/with space \u{e9}t\u{e9}.bin", random_bytes(300_000, 7)),
        ("empty", Vec::new()),
    ];
    let began = Instant::now();
    for (key, body) in &objects {
        c.put(&b, key, body);
    }
    for (key, body) in &objects {
        assert_same(&c.get(&b, key).expect(key), body);
    }
    eprintln!(
        "first bucket made in {:.1} s; a put or get (a python3 process each) takes {:.2} s",
        first_bucket.as_secs_f64(),
        began.elapsed().as_secs_f64() / 6.0
    );
    assert_eq!(c.get(&b, "no such key"), None);
    // By UTF-8 bytes, as S3 lists.
    let mut all: Vec<(String, u64)> = objects
        .iter()
        .map(|(k, v)| (k.to_string(), v.len() as u64))
        .collect();
    all.sort();
    assert_eq!(c.list(&b, ""), all);
    assert_eq!(c.list_paged(&b, "", 1), all, "one key per page");
    assert_eq!(c.list(&b, "dir/"), all[..1]);
    assert_eq!(c.list(&b, "nothing/"), []);

    // A multipart upload in progress is listed until it is aborted, and is no object.
    assert_eq!(c.uploads(&b), Vec::<String>::new());
    let id = c.boto3(
        "print(s3.create_multipart_upload(Bucket=args[0], Key=args[1])['UploadId'])",
        &[&b, "big upload \u{e9}"],
    );
    let id = id.trim();
    assert!(!id.is_empty());
    assert_eq!(c.uploads(&b), ["big upload \u{e9}"]);
    assert_eq!(c.list(&b, ""), all);
    c.boto3(
        "s3.abort_multipart_upload(Bucket=args[0], Key=args[1], UploadId=args[2])",
        &[&b, "big upload \u{e9}", id],
    );
    assert_eq!(c.uploads(&b), Vec::<String>::new());

    // The gateway goes away: its port refuses; S3 fails. Then it comes back on the same
    // port with the same data.
    let began = Instant::now();
    c.stop_gateway();
    let stopped = began.elapsed();
    assert!(TcpStream::connect(("127.0.0.1", c.rgw_port)).is_err());
    let down = std::process::Command::new("curl")
        .args(["--silent", "--max-time", "10", &c.endpoint])
        .status()
        .unwrap();
    assert_eq!(down.code(), Some(7), "curl: connection refused");
    let began = Instant::now();
    c.start_gateway();
    eprintln!(
        "gateway: stopped in {:.1} s, started in {:.1} s",
        stopped.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    assert_same(&c.get(&b, "plain.txt").unwrap(), b"hello\n");
    c.put(&b, "after restart", b"again");
    assert_eq!(c.get(&b, "after restart").as_deref(), Some(&b"again"[..]));
    assert_eq!(c.list(&b, "").len(), 4);
}

#[test]
fn own_cluster_survives_a_dead_osd_and_is_gone_once_dropped() {
    if !ceph::require() {
        return;
    }
    let c = Ceph::start(2, 2);
    eprintln!(
        "own cluster: started in {:.1} s, {} MiB resident",
        c.start_time.as_secs_f64(),
        c.rss() >> 20
    );
    let b = c.bucket("own");
    c.put(&b, "before", b"two copies");
    let began = Instant::now();
    c.kill_osd(1);
    eprintln!(
        "osd.1 killed and marked down in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    assert_eq!(c.get(&b, "before").as_deref(), Some(&b"two copies"[..]));
    c.put(&b, "after", b"one copy");
    assert_eq!(c.get(&b, "after").as_deref(), Some(&b"one copy"[..]));

    let dir = c.dir.clone();
    let pids: Vec<u32> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            name.ends_with(".pid").then(|| {
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(pids.len(), 5, "mon, mgr, 2 OSDs, gateway");
    drop(c);
    assert!(!dir.exists(), "{dir:?} left behind");
    for pid in pids {
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let conf = dir.join("ceph.conf");
        assert!(
            !String::from_utf8_lossy(&cmdline).contains(conf.to_str().unwrap()),
            "pid {pid} still runs: {}",
            String::from_utf8_lossy(&cmdline)
        );
    }
}
