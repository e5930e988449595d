//! Running storage work as a session's user, on whatever thread does it: the one place
//! that switches a thread to a user's ids ([`Authorizer::impersonate_user`]) and back.
//!
//! Every storage call of a logged-in session that reaches the kernel goes through here:
//! the session's requests (src/control/session/request.rs) and each later piece of a
//! listing, which the server reads on the worker pool ([`Listing`](crate::Listing)).

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::Authorizer;

/// A user, and the authorizer that can switch a thread to the user's ids.
#[derive(Clone)]
pub(crate) struct Identity {
    authorizer: Arc<dyn Authorizer>,
    user: String,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .finish()
    }
}

/// Why work could not run as the user.
#[derive(Debug)]
pub(crate) enum SwitchError {
    /// The switch to the user's ids failed (and whatever part of it happened was undone);
    /// the work did not run. The reason is logged.
    Enter,
    /// The work ran, but the thread could not get the server's ids back: it has been
    /// retired from the worker pool and must run nothing else. The reason is logged.
    Leave,
}

impl Identity {
    pub fn new(authorizer: Arc<dyn Authorizer>, user: String) -> Identity {
        Identity { authorizer, user }
    }

    /// Runs `f` on this thread under the user's ids, and gives the thread the server's ids
    /// back afterwards, also when `f` panics (the panic then goes on once they are back).
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> Result<T, SwitchError> {
        let user = &self.user;
        if let Err(e) = self.authorizer.impersonate_user(user) {
            // Whatever part of the switch happened is undone; terminating is idempotent.
            let _ = self.authorizer.terminate_impersonation(user);
            crate::logger::logerror(&format!("can't impersonate {user}: {e}"));
            return Err(SwitchError::Enter);
        }
        // A panic in the work is caught here, so the ids are given back before this thread
        // runs anything else.
        let result = catch_unwind(AssertUnwindSafe(f));
        if let Err(e) = self.authorizer.terminate_impersonation(user) {
            // This thread must not run anything else: it still holds the user's ids.
            crate::pool::retire_current_worker();
            crate::logger::logerror(&format!("can't end impersonation of {user}: {e}"));
            return Err(SwitchError::Leave);
        }
        match result {
            Ok(v) => Ok(v),
            Err(panic) => resume_unwind(panic),
        }
    }
}
