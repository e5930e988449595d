//! `with_*` setters for the settings structs.
//!
//! [`Config`](crate::Config), [`DtpConfig`](crate::DtpConfig),
//! [`FloodConfig`](crate::FloodConfig), [`Limits`](crate::Limits),
//! [`UnixOptions`](crate::UnixOptions) and [`TlsConfig`](crate::TlsConfig) are
//! `#[non_exhaustive]`, so that a field added in a later version breaks no program: outside
//! this crate they are made by their constructor or `Default`, then changed field by field
//! or with these setters in one expression, as a builder would.
//!
//! ```
//! use ftpdlib::{Limits, UnixOptions};
//! let limits = Limits::new(0, 64 * 1024).with_read_limit(1 << 20);
//! let opts = UnixOptions::default().with_msg_login("hi");
//! # assert_eq!((limits.read_limit, opts.msg_login.as_str()), (1 << 20, "hi"));
//! ```
//!
//! A struct literal does not compile outside the crate, for each of them:
//! ```compile_fail,E0639
//! let _ = ftpdlib::Limits { read_limit: 1, write_limit: 2 };
//! ```
//! ```compile_fail,E0639
//! let _ = ftpdlib::FloodConfig { max_commands_per_sec: 5, ..Default::default() };
//! ```
//! ```compile_fail,E0639
//! let _ = ftpdlib::DtpConfig { read_limit: 5, ..Default::default() };
//! ```
//! ```compile_fail,E0639
//! let _ = ftpdlib::UnixOptions { anonymous: true, ..Default::default() };
//! ```
//! ```compile_fail,E0639
//! let _ = ftpdlib::Config { banner: String::new(), ..Default::default() };
//! ```

/// Generates, for each `with_name => field: Type` entry, a method that sets `field` and
/// returns the value, for chained construction. Under `into`, the method takes anything that
/// converts into `Type` (a `&str` for a `String`, a `Duration` for an `Option<Duration>`);
/// otherwise exactly `Type`, so that integer literals need no suffix.
macro_rules! with_setters {
    ($ty:ident { $($setter:ident => $field:ident: $t:ty,)* }) => {
        impl $ty {
            $(
                #[doc = concat!(
                    "Sets [`", stringify!($field), "`](Self::", stringify!($field),
                    ") and returns the settings."
                )]
                #[must_use]
                pub fn $setter(mut self, value: $t) -> Self {
                    self.$field = value;
                    self
                }
            )*
        }
    };
    ($ty:ident into { $($setter:ident => $field:ident: $t:ty,)* }) => {
        impl $ty {
            $(
                #[doc = concat!(
                    "Sets [`", stringify!($field), "`](Self::", stringify!($field),
                    ") and returns the settings."
                )]
                #[must_use]
                pub fn $setter(mut self, value: impl Into<$t>) -> Self {
                    self.$field = value.into();
                    self
                }
            )*
        }
    };
}
