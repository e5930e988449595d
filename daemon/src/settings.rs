//! From the options to the server's settings: the `--users` file, the config file's
//! accounts, the TLS certificate, the authorizer for virtual or system users.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ftpdlib::authorizer::crypt::{self};
use ftpdlib::{DummyAuthorizer, UnixAuthorizer, UnixOptions};
use ftpdlib::{Limits, TlsConfig};

use crate::args::Options;
use crate::config_file::Account;
use crate::users_file;

/// Reads a `--users` file ([`crate::users_file`]) into `auth`; errors name the file and
/// the line.
fn load_users(
    auth: &mut DummyAuthorizer,
    file: &Path,
    default_home: &Path,
) -> Result<usize, String> {
    let text =
        std::fs::read_to_string(file).map_err(|e| format!("can't read {}: {e}", file.display()))?;
    let users = users_file::parse(&text).map_err(|(n, why)| match n {
        0 => format!("{}: {why}", file.display()),
        n => format!("{}:{n}: {why}", file.display()),
    })?;
    for u in &users {
        let home = u
            .home
            .map_or_else(|| default_home.to_path_buf(), PathBuf::from);
        // A field that starts like a hash is one: a truncated or mangled hash is refused
        // rather than taken as the password itself.
        let added = if crypt::looks_like_hash(u.password) {
            auth.add_user_hashed(u.name, u.password, &home, u.perms)
        } else {
            auth.add_user(u.name, u.password, &home, u.perms)
        };
        added.map_err(|e| format!("{}:{}: {e}", file.display(), u.line))?;
    }
    Ok(users.len())
}

#[cfg(feature = "tls")]
pub(crate) fn tls_config(o: &Options, cert: &Path, key: &Path) -> Result<TlsConfig, String> {
    // The library's error names the file; say which setting it came from.
    let mut tls = TlsConfig::from_pem_files(cert, key)
        .map_err(|e| format!("TLS certificate or key (--tls-cert/--tls-key): {e}"))?;
    tls.implicit = o.tls_implicit;
    tls.control_required = o.tls_control_required.unwrap_or_default();
    tls.data_required = o.tls_data_required.unwrap_or_default();
    tls.data_session_reuse_required = o.tls_session_reuse.unwrap_or(false);
    tls.data_close_notify_required = o.tls_close_notify_required;
    tls.ccc_allowed = o.tls_allow_ccc;
    Ok(tls)
}

#[cfg(not(feature = "tls"))]
pub(crate) fn tls_config(_: &Options, _: &Path, _: &Path) -> Result<TlsConfig, String> {
    Err("this ftpdlib was built without TLS support (cargo feature \"tls\")".to_string())
}

/// The authorizer of `--system-users`.
pub(crate) fn system_authorizer(
    o: &Options,
    dir: &Path,
    perm: &str,
    who: &mut Vec<String>,
) -> Result<UnixAuthorizer, String> {
    let mut rejected = o.rejected_users.clone();
    // Logging in as root over FTP would run every command as root: refused unless the
    // administrator names it in --allowed-users.
    if o.allowed_users.is_empty() && !rejected.iter().any(|u| u == "root") {
        rejected.push("root".to_string());
    }
    let opts = UnixOptions::default()
        .with_global_perm(ftpdlib::Perms::parse(perm).map_err(|e| e.to_string())?)
        .with_allowed_users(o.allowed_users.clone())
        .with_rejected_users(rejected)
        .with_require_valid_shell(o.require_valid_shell)
        .with_anonymous(o.anonymous)
        .with_anonymous_home(
            o.anonymous_settings
                .home
                .clone()
                .unwrap_or_else(|| dir.to_path_buf()),
        );
    let auth = UnixAuthorizer::new(opts).map_err(|e| e.to_string())?;
    who.push(format!("system users ({perm})"));
    if o.anonymous {
        who.push(format!(
            "anonymous as {} (elr)",
            UnixAuthorizer::DEFAULT_ANONYMOUS_USER
        ));
    }
    Ok(auth)
}

/// The authorizer of `--username`, `--users`, the config file's `[[users]]` and plain
/// anonymous serving.
pub(crate) fn virtual_authorizer(
    o: &Options,
    dir: &Path,
    perm: &str,
    who: &mut Vec<String>,
) -> Result<DummyAuthorizer, String> {
    let mut auth = DummyAuthorizer::new();
    if crate::storage::is_object(&o.storage) {
        // Homes are prefixes in the object store, not directories here.
        auth = auth.homes_elsewhere();
    }
    if let (Some(u), Some(p)) = (&o.username, &o.password) {
        auth.add_user(u, p, dir, perm).map_err(|e| e.to_string())?;
        who.push(format!("user {u:?} ({perm})"));
    }
    if let Some(file) = &o.users {
        let n = load_users(&mut auth, file, dir)?;
        who.push(format!("{n} accounts from {}", file.display()));
    }
    if !o.accounts.is_empty() {
        for a in &o.accounts {
            add_account(&mut auth, a, dir)?;
        }
        let from = o
            .config
            .as_ref()
            .map_or_else(String::new, |c| format!(" from {}", c.display()));
        who.push(format!("{} accounts{from}", o.accounts.len()));
    }
    let anon = &o.anonymous_settings;
    // Anonymous alone gets the permissions of -w; beside other accounts, read-only.
    let alone = who.is_empty();
    if alone || o.anonymous {
        let anon_perm = anon
            .perm
            .as_deref()
            .unwrap_or(if alone { perm } else { "elr" });
        let home = anon.home.as_deref().unwrap_or(dir);
        auth.add_anonymous(home, anon_perm)
            .map_err(|e| format!("anonymous: {e}"))?;
        let name = DummyAuthorizer::ANONYMOUS;
        if let Some(m) = &anon.msg_login {
            auth.set_msg_login(name, m);
        }
        if let Some(m) = &anon.msg_quit {
            auth.set_msg_quit(name, m);
        }
        match &anon.home {
            Some(h) => who.push(format!("anonymous ({anon_perm}) in {}", h.display())),
            None => who.push(format!("anonymous ({anon_perm})")),
        }
    }
    Ok(auth)
}

/// One `[[users]]` account: its password stored as given or as a hash, its messages.
fn add_account(auth: &mut DummyAuthorizer, a: &Account, dir: &Path) -> Result<(), String> {
    let home = a.home.as_deref().unwrap_or(dir);
    let added = if crypt::looks_like_hash(&a.password) {
        auth.add_user_hashed(&a.name, &a.password, home, &a.perm)
    } else {
        auth.add_user(&a.name, &a.password, home, &a.perm)
    };
    added.map_err(|e| format!("user {:?}: {e}", a.name))?;
    if let Some(m) = &a.msg_login {
        auth.set_msg_login(&a.name, m);
    }
    if let Some(m) = &a.msg_quit {
        auth.set_msg_quit(&a.name, m);
    }
    Ok(())
}

/// The per-user bandwidth limits of the config file, shared by all the sessions of a user
/// (`Config::user_limits`).
pub(crate) fn user_limits(o: &Options) -> HashMap<String, Limits> {
    let mut limits: HashMap<String, Limits> = o
        .accounts
        .iter()
        .filter(|a| a.limits != Limits::default())
        .map(|a| (a.name.clone(), a.limits))
        .collect();
    if o.anonymous_settings.limits != Limits::default() {
        limits.insert(
            DummyAuthorizer::ANONYMOUS.to_string(),
            o.anonymous_settings.limits,
        );
    }
    limits
}

/// The permissions of `-w` (everything) or of its absence (read-only).
pub(crate) fn perm(o: &Options) -> &'static str {
    if o.write {
        "elradfmwMT"
    } else {
        "elr"
    }
}
