//! The deployment files in dist/ and the Dockerfile: the systemd unit passes
//! `systemd-analyze verify` and runs the example config file, the example settings name
//! only variables the command reads, and the Dockerfile builds this package's binary and
//! exposes the passive ports its config file sets.

mod util;

use std::path::Path;
use std::process::Command;

fn dist(name: &str) -> String {
    repo_file(&format!("dist/{name}"))
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// The value of `key = value` in a config file, without quotes.
fn toml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .trim_matches('"')
        .to_string()
}

#[test]
fn every_variable_of_the_example_settings_is_one_the_command_reads() {
    let out = util::run(Command::new(env!("CARGO_BIN_EXE_ftpdlib")).arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    let env = dist("ftpdlib.env");
    let names: Vec<&str> = env
        .lines()
        .map(|l| l.trim_start_matches('#'))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name))
        .filter(|name| name.starts_with("FTPDLIB_"))
        .collect();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            help.contains(&format!("[env: {name}")),
            "dist/ftpdlib.env sets {name}, which ftpdlib --help does not list"
        );
    }
}

#[test]
fn the_systemd_unit_verifies() {
    if !util::have("systemd-analyze") {
        // Not on every machine; .ci/run's Debian has it.
        eprintln!("skipping: systemd-analyze is not installed");
        return;
    }
    let dir = util::TempDir::new("dist-unit");
    // The unit as installed, pointing at this build and a copy of the example settings.
    let unit = dist("ftpdlib.service")
        .lines()
        .map(|l| {
            if l.starts_with("ExecStart=") {
                // The installed command reads the installed config file.
                assert_eq!(
                    l,
                    "ExecStart=/usr/local/bin/ftpdlib --config /etc/ftpdlib/ftpdlib.toml"
                );
                format!(
                    "ExecStart={} --config {}",
                    env!("CARGO_BIN_EXE_ftpdlib"),
                    dir.join("ftpdlib.toml").display()
                )
            } else if l.starts_with("EnvironmentFile=") {
                format!("EnvironmentFile=-{}", dir.join("env").display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("env"), dist("ftpdlib.env")).unwrap();
    std::fs::write(dir.join("ftpdlib.toml"), dist("ftpdlib.toml")).unwrap();
    let path = dir.join("ftpdlib.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // Warnings (an unknown directive, a typo) are printed even when it succeeds.
    assert!(
        !said.contains("ftpdlib.service:"),
        "systemd-analyze verify: {said}"
    );
}

/// The Dockerfile builds this package and copies its binary; the image's config file is
/// the one in dist/, named by FTPDLIB_CONFIG; EXPOSE names its port and passive range; the
/// runtime runs as a user of its own with libcrypt1 alone. (The image itself is built
/// where docker runs; this checks what can drift from the repository.)
#[test]
fn the_dockerfile_matches_the_package_and_its_config() {
    let docker = repo_file("Dockerfile");
    let lines: Vec<&str> = docker.lines().map(str::trim).collect();
    let build = lines
        .iter()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build line");
    assert!(
        build.contains(&format!("-p {}", env!("CARGO_PKG_NAME"))) && build.contains("--release"),
        "{build}"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_ftpdlib"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let installed = format!("/usr/local/bin/{bin}");
    assert!(
        lines
            .contains(&format!("COPY --from=build /src/target/release/{bin} {installed}").as_str()),
        "{docker}"
    );
    assert!(lines.contains(&format!("ENTRYPOINT [\"{installed}\"]").as_str()));
    // The image's config file, from dist/, named by FTPDLIB_CONFIG.
    let copy = lines
        .iter()
        .find_map(|l| l.strip_prefix("COPY dist/"))
        .expect("a config file copied from dist/");
    let (source, target) = copy.split_once(' ').unwrap();
    assert!(lines.contains(&format!("ENV FTPDLIB_CONFIG={target}").as_str()));
    let config = dist(source);
    // EXPOSE: the port and the passive range of that file.
    let expose = lines
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .expect("EXPOSE");
    let exposed: Vec<&str> = expose.split_whitespace().collect();
    assert_eq!(
        exposed,
        [toml_value(&config, "port"), toml_value(&config, "range")],
        "EXPOSE and dist/{source} disagree"
    );
    // Every variable the Dockerfile sets is one the command reads.
    let out = util::run(Command::new(env!("CARGO_BIN_EXE_ftpdlib")).arg("--help"));
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    for l in lines.iter().filter_map(|l| l.strip_prefix("ENV ")) {
        let name = l.split('=').next().unwrap();
        assert!(help.contains(&format!("[env: {name}")), "{name}");
    }
    // The build stage gets the headers of libcrypt; the runtime stage only the library.
    let (build_stage, runtime) = docker.split_once("\nFROM debian:").expect("two stages");
    assert!(build_stage.contains("FROM rust:") && build_stage.contains("libcrypt-dev"));
    assert!(runtime.contains("libcrypt1") && !runtime.contains("libcrypt-dev"));
    assert!(runtime.contains("\nUSER ftpdlib\n") && runtime.contains("useradd --system"));
    // The build context keeps what the workspace needs.
    let ignore = repo_file(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert!(ignored.contains(&"target/"), "{ignore}");
    for needed in [
        "src",
        "daemon",
        "demo",
        "tests",
        "dist",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        assert!(
            !ignored.iter().any(|i| i.trim_end_matches('/') == needed),
            "{needed} is ignored"
        );
    }
}

/// The image's config file serves: anonymous, from its directory, PASV in its range.
#[test]
fn the_container_config_serves_its_passive_range() {
    let dir = util::TempDir::new("dist-container");
    std::fs::write(dir.join("hello.txt"), b"hi\n").unwrap();
    let config = dist("container.toml").replace(
        "directory = \"/srv/ftp\"",
        &format!("directory = {:?}", dir.path().to_str().unwrap()),
    );
    let path = dir.join("ftpdlib.toml");
    std::fs::write(&path, config).unwrap();
    // -i and -p: loopback and a free port, over the file's.
    let (_d, port) = util::serve_daemon(&["--config", path.to_str().unwrap()]);
    let mut c = util::Client::connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    c.login("anonymous", "x@y");
    let pasv = c.pasv();
    assert!((30000..=30009).contains(&pasv.port()), "{pasv}");
    // A second PASV replaces the first listener.
    let got = c.retr("RETR hello.txt");
    assert_eq!(got, b"hi\n");
    c.cmd("STOR no.txt", 550);
}
