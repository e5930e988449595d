//! The `--users` file parser of the `ftpdlib` command (daemon/src/users_file.rs), on any
//! text.
//!
//! Invariants: nothing panics; every account it accepts has a name (not `anonymous`) and a
//! password, and a home only if absolute; every line that is neither blank nor a comment
//! is an account; and writing the accounts back out and parsing them again gives the same
//! accounts (no field can shift into another).
#![no_main]

#[path = "../../daemon/src/users_file.rs"]
mod users_file;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let Ok(users) = users_file::parse(text) else {
        return;
    };
    let meaningful = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    assert_eq!(users.len(), meaningful);
    let mut out = String::new();
    for u in &users {
        assert!(!u.name.is_empty() && u.name != "anonymous", "{u:?}");
        assert!(!u.password.is_empty(), "{u:?}");
        assert!(u.home.is_none_or(|h| h.starts_with('/')), "{u:?}");
        // Always four fields, so that the perms are never the line's end (the line is
        // trimmed there).
        out.push_str(&format!(
            "{}:{}:{}:{}\n",
            u.name,
            u.password,
            u.perms,
            u.home.unwrap_or("")
        ));
    }
    let again = users_file::parse(&out).expect("written accounts parse");
    let fields = |v: &[users_file::UserLine]| {
        v.iter()
            .map(|u| {
                (
                    u.name.to_string(),
                    u.password.to_string(),
                    u.perms.to_string(),
                    u.home.map(str::to_string),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(fields(&users), fields(&again));
});
