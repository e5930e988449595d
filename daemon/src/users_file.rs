//! The `--users` file: `name:password:perms[:home]` a line, `#` comments and blank lines
//! allowed. A pure parser (std only) so that it can be fuzzed on its own (fuzz/, target
//! `users_file`); settings.rs turns its accounts into the authorizer's.

/// One account line of a users file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserLine<'a> {
    /// The line number, from 1.
    pub line: usize,
    /// The user name; never empty, never `anonymous`.
    pub name: &'a str,
    /// The password or its crypt(3) hash; never empty.
    pub password: &'a str,
    /// The permission letters, as written (checked by the authorizer).
    pub perms: &'a str,
    /// The home, an absolute path, when the line gives one.
    pub home: Option<&'a str>,
}

/// Splits a users file into its account lines.
///
/// # Errors
/// `(line, why)` for the first bad line: fewer than three fields or an empty name, a line
/// for `anonymous` (it takes no password: `--anonymous` turns it on), an empty password, a
/// home that is not an absolute path (what a `:` inside a password leaves there); and
/// `(0, why)` for a file with no account at all.
pub fn parse(text: &str) -> Result<Vec<UserLine<'_>>, (usize, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.splitn(4, ':').collect();
        let (name, password, perms) = match parts[..] {
            [name, password, perms, ..] if !name.is_empty() => (name, password, perms),
            _ => return Err((n, "expected name:password:perms[:home]".to_string())),
        };
        if name == "anonymous" {
            return Err((
                n,
                "anonymous takes no password and has no line here; --anonymous serves it, \
                 read-only"
                    .to_string(),
            ));
        }
        if password.is_empty() {
            return Err((
                n,
                "empty password; give one, or a hash from ftpdlib hash-password".to_string(),
            ));
        }
        let home = parts.get(3).copied().filter(|h| !h.is_empty());
        if let Some(home) = home {
            if !home.starts_with('/') {
                return Err((
                    n,
                    format!(
                        "home {home:?} is not an absolute path (a password cannot contain ':' \
                         in this file; store a hash from ftpdlib hash-password instead)"
                    ),
                ));
            }
        }
        out.push(UserLine {
            line: n,
            name,
            password,
            perms,
            home,
        });
    }
    if out.is_empty() {
        return Err((0, "no accounts in the file".to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_comments_and_homes() {
        let text = "# accounts\n\nalice:pw:elr\n  bob:$y$x:elradfmw:/srv/bob  \n";
        let users = parse(text).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(
            (users[0].line, users[0].name, users[0].home),
            (3, "alice", None)
        );
        assert_eq!((users[1].line, users[1].home), (4, Some("/srv/bob")));
    }

    #[test]
    fn refusals_name_the_line() {
        assert_eq!(parse("a:b\n").unwrap_err().0, 1);
        assert_eq!(parse("#\n:pw:elr\n").unwrap_err().0, 2);
        assert!(parse("anonymous:x:elr\n")
            .unwrap_err()
            .1
            .contains("--anonymous"));
        assert!(parse("a::elr\n").unwrap_err().1.contains("empty password"));
        assert!(parse("a:p:w:rd:elr\n").unwrap_err().1.contains("absolute"));
        assert_eq!(parse("# nothing\n").unwrap_err().0, 0);
    }
}
