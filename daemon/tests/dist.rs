//! The deployment files in dist/: the systemd unit passes `systemd-analyze verify`, and the
//! example settings name only variables the command reads.

mod util;

use std::process::Command;

fn dist(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../dist/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
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
                format!("ExecStart={}", env!("CARGO_BIN_EXE_ftpdlib"))
            } else if l.starts_with("EnvironmentFile=") {
                format!("EnvironmentFile={}", dir.join("env").display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("env"), dist("ftpdlib.env")).unwrap();
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
