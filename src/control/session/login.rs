//! Login and logout: USER, PASS, QUIT, and what REIN and a second USER forget.

use std::sync::Arc;
use std::time::Instant;

use crate::control::reply::Reply;
use crate::filesystem::Filesystem;

use super::{Action, Auth, DataState, Delayed, Op, Session, Then};

impl Session {
    pub(super) fn cmd_user(&mut self, now: Instant, arg: &str) {
        if self.control_tls_missing(arg) {
            return;
        }
        if let Auth::LoggedIn(_) = self.auth {
            self.flush_account(now);
            self.reply(
                331,
                "Previous account information was flushed, send password.",
            );
        } else {
            self.reply(331, "Username ok, send password.");
        }
        self.auth = Auth::UserGiven(arg.to_string());
    }

    /// Forgets the login (a new USER): RFC 959 lets a running transfer finish.
    /// Ends the login (REIN, or USER while logged in). A transfer already moving data
    /// finishes (RFC 959: REIN lets it complete); one accepted but not started (its 150
    /// out, no data connection up yet) ends here with 426, so it can never run with the
    /// next user's rights, and any prepared data connection goes with it.
    pub(super) fn flush_account(&mut self, now: Instant) {
        if !self.transfer_running {
            self.abandon_pending(now, "Transfer aborted; the user logged out.");
        }
        if self.pending.is_none() && self.data != DataState::None {
            self.actions.push_back(Action::CloseData);
            self.data = DataState::None;
            self.awaiting_connect = false;
        }
        self.hook(|h, i| h.on_logout(i));
        self.auth = Auth::Anonymous;
        self.fs = None;
    }

    pub(super) fn cmd_pass(&mut self, now: Instant, password: &str) {
        let user = match &self.auth {
            Auth::LoggedIn(_) => return self.reply(503, "User already authenticated."),
            Auth::Anonymous => return self.reply(503, "Login with USER first."),
            Auth::UserGiven(u) => u.clone(),
        };
        if self.control_tls_missing(&user) {
            return;
        }
        self.request(
            Op::Login {
                user: user.clone(),
                password: password.to_string(),
            },
            Then::Pass { user, at: now },
        );
    }

    /// PASS, once the authorizer has answered; `at` is when the PASS came.
    pub(super) fn finish_pass(
        &mut self,
        now: Instant,
        at: Instant,
        user: String,
        fs: Result<Arc<dyn Filesystem>, crate::AuthError>,
    ) {
        let authorizer = Arc::clone(&self.config.authorizer);
        match fs {
            Ok(fs) => {
                self.fs = Some(fs);
                self.cwd = b"/".to_vec();
                self.auth = Auth::LoggedIn(user.clone());
                self.attempts = 0;
                self.login_deadline = None;
                if let Some(stats) = &self.stats {
                    stats.login(true);
                }
                let msg = authorizer.msg_login(&user);
                self.reply(230, msg);
                self.log("login", &format!("USER '{user}' logged in."));
                self.hook(|h, i| h.on_login(i));
            }
            Err(e) => {
                self.attempts += 1;
                if let Some(stats) = &self.stats {
                    stats.login(false);
                }
                self.actions.push_back(Action::LoginFailed);
                self.hook(|h, i| h.on_login_failed(i, &user));
                self.log("login_failed", &format!("USER '{user}' failed login."));
                self.auth = Auth::Anonymous;
                let mut text = match e {
                    crate::AuthError::BadCredentials if user == "anonymous" => {
                        "Anonymous access not allowed.".to_string()
                    }
                    other => other.to_string(),
                };
                let close = self.attempts >= self.config.max_login_attempts;
                if close {
                    text.push_str(" Disconnecting.");
                }
                let reply = Reply::new(530, text);
                if self.config.auth_failed_timeout.is_zero() {
                    self.reply(reply.code, reply.text);
                    if close {
                        self.close();
                    }
                } else {
                    // The pause counts from the PASS: a check that takes time (a hash for
                    // a name that exists, none for one that does not) ends inside it, and
                    // the time of the 530 does not tell the names apart.
                    let due = crate::ioloop::deadline(at, self.config.auth_failed_timeout);
                    self.delayed = Some(Delayed {
                        at: due.max(now),
                        reply,
                        close,
                    });
                }
            }
        }
    }

    pub(super) fn quit_message(&self) -> String {
        match &self.auth {
            Auth::LoggedIn(u) => self.config.authorizer.msg_quit(u),
            _ => "Goodbye.".to_string(),
        }
    }

    pub(super) fn cmd_quit(&mut self, now: Instant) {
        let msg = self.quit_message();
        if self.pending.is_some() && self.transfer_running {
            // RFC 959: a running transfer finishes and gets its reply before the close. The
            // 221 goes out now, as pyftpdlib sends it, so a client waiting for it before it
            // finishes its upload is not left waiting forever.
            self.reply(221, msg);
            self.close_after_transfer = true;
            return;
        }
        // A 150 went out but no data connection is up: the transfer ends here.
        self.abandon_pending(now, "Transfer aborted; the session is ending.");
        self.reply(221, msg);
        self.close();
    }
}
