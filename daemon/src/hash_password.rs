//! `ftpdlib hash-password`: a password hash for `--users` files and `[[users]]` tables,
//! made with the system's crypt(3) (yescrypt or SHA-512).

use ftpdlib::authorizer::crypt::{self, Method};

/// `ftpdlib hash-password`: one line from stdin in, its hash out.
pub(crate) fn hash_password(method: Method) -> Result<(), String> {
    use std::io::IsTerminal;
    // At a terminal the password is asked for with echo off (rpassword: the termios dance
    // done right, restored on every path); from a pipe it is the first line.
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Password: ")
            .map_err(|e| format!("can't read the password: {e}"))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("can't read the password: {e}"))?;
        line
    };
    let password = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line);
    if password.is_empty() {
        return Err("empty password on standard input".to_string());
    }
    let hash = crypt::hash_password(password, method).map_err(|e| e.to_string())?;
    println!("{hash}");
    Ok(())
}
