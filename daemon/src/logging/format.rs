//! One log record to one line: the text format (env_logger's layout around pyftpdlib's
//! messages) or one JSON object.

use std::fmt::Write as _;

use log::kv::{Key, Value, VisitSource, VisitValue};
use serde_json::{Map, Number, Value as Json};

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Format {
    /// `[2026-11-29T15:50:32Z INFO  ftpdlib] 127.0.0.1:50000-[user] USER 'user' logged in.`
    #[default]
    Text,
    /// One JSON object a line (see docs/deploy.md, "Logs").
    Json,
}

/// The time of a record, in UTC or in the local time zone (`--use-localtime`).
pub(crate) fn timestamp(localtime: bool, millis: bool) -> String {
    stamp_of(jiff::Timestamp::now(), localtime, millis)
}

/// Appends the time of a text line (to the second) to `out`. The text is made once per
/// second and thread and copied for the other lines of that second: formatting a date
/// costs more than the rest of a line.
fn push_second_stamp(out: &mut String, localtime: bool) {
    thread_local! {
        /// The second, whether local, and its text.
        static LAST: std::cell::RefCell<(i64, bool, String)> =
            const { std::cell::RefCell::new((i64::MIN, false, String::new())) };
    }
    let now = jiff::Timestamp::now();
    LAST.with_borrow_mut(|(second, local, text)| {
        if *second != now.as_second() || *local != localtime {
            *text = stamp_of(now, localtime, false);
            (*second, *local) = (now.as_second(), localtime);
        }
        out.push_str(text);
    });
}

fn stamp_of(now: jiff::Timestamp, localtime: bool, millis: bool) -> String {
    let (utc, local) = if millis {
        ("%Y-%m-%dT%H:%M:%S%.3fZ", "%Y-%m-%dT%H:%M:%S%.3f%:z")
    } else {
        ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S%:z")
    };
    if localtime {
        now.to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime(local)
            .to_string()
    } else {
        now.strftime(utc).to_string()
    }
}

/// Appends `record` as one line, newline included, to `out`. `stamp` says whether the
/// line starts with its time (syslog stamps its own).
pub(crate) fn line(
    out: &mut String,
    format: Format,
    localtime: bool,
    stamp: bool,
    record: &log::Record<'_>,
) {
    match format {
        Format::Text => {
            if stamp {
                out.push('[');
                push_second_stamp(out, localtime);
                let _ = write!(
                    out,
                    " {:<5} {}] {}",
                    record.level(),
                    record.target(),
                    record.args()
                );
            } else {
                let _ = write!(out, "{}: {}", record.target(), record.args());
            }
        }
        Format::Json => {
            let mut map = Map::new();
            if stamp {
                map.insert("time".into(), Json::String(timestamp(localtime, true)));
            }
            map.insert("level".into(), Json::String(record.level().to_string()));
            map.insert("target".into(), Json::String(record.target().to_string()));
            map.insert("message".into(), Json::String(record.args().to_string()));
            let mut fields = Fields(&mut map);
            // A field that can't be read is left out; the message still says it all.
            let _ = record.key_values().visit(&mut fields);
            out.push_str(&Json::Object(map).to_string());
        }
    }
    if format == Format::Text {
        text_safe(out);
    }
    out.push('\n');
}

/// Makes a text line safe to read in a terminal: a client's name or path may carry any
/// control character (ESC sequences that retitle a terminal or recolour it, a CR that hides
/// the start of the line, backspaces, NUL). Each is written as `\xNN` (`\u{NN}` above
/// ASCII), so no client can forge or hide a line; a newline is kept and the next line
/// indented, as pyftpdlib's formatter does. JSON lines escape them already.
fn text_safe(out: &mut String) {
    // Control characters are C0 and DEL (single bytes) and C1 (U+0080 to U+009F, lead
    // byte 0xC2): a line without those bytes, nearly every line, is left after one pass
    // over its bytes, without decoding its characters.
    if !out.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2)
        || !out.chars().any(char::is_control)
    {
        return;
    }
    let mut safe = String::with_capacity(out.len() + 16);
    for c in out.chars() {
        match c {
            '\n' => safe.push_str("\n    "),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(safe, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(safe, "\\u{{{:x}}}", c as u32);
            }
            c => safe.push(c),
        }
    }
    *out = safe;
}

/// Copies a record's key-values into a JSON object, numbers and booleans as such. The
/// four keys of every line win over a field of the same name.
struct Fields<'a>(&'a mut Map<String, Json>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let mut json = ToJson(Json::Null);
        value.visit(&mut json)?;
        self.0.entry(key.as_str().to_string()).or_insert(json.0);
        Ok(())
    }
}

struct ToJson(Json);

impl<'v> VisitValue<'v> for ToJson {
    fn visit_any(&mut self, value: Value<'_>) -> Result<(), log::kv::Error> {
        self.0 = Json::String(value.to_string());
        Ok(())
    }

    fn visit_u64(&mut self, value: u64) -> Result<(), log::kv::Error> {
        self.0 = Json::Number(value.into());
        Ok(())
    }

    fn visit_i64(&mut self, value: i64) -> Result<(), log::kv::Error> {
        self.0 = Json::Number(value.into());
        Ok(())
    }

    fn visit_f64(&mut self, value: f64) -> Result<(), log::kv::Error> {
        // JSON has no NaN or infinity: those go out as text.
        self.0 =
            Number::from_f64(value).map_or_else(|| Json::String(value.to_string()), Json::Number);
        Ok(())
    }

    fn visit_bool(&mut self, value: bool) -> Result<(), log::kv::Error> {
        self.0 = Json::Bool(value);
        Ok(())
    }

    fn visit_str(&mut self, value: &str) -> Result<(), log::kv::Error> {
        self.0 = Json::String(value.to_string());
        Ok(())
    }

    fn visit_borrowed_str(&mut self, value: &'v str) -> Result<(), log::kv::Error> {
        self.visit_str(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: Format, record: &log::Record<'_>) -> String {
        let mut out = String::new();
        line(&mut out, format, false, true, record);
        out
    }

    #[test]
    fn json_keeps_the_types_of_the_fields() {
        let kvs: [(&str, Value<'_>); 4] = [
            ("bytes", Value::from(10u64)),
            ("seconds", Value::from(0.5f64)),
            ("completed", Value::from(true)),
            ("path", Value::from("/a \"b\"")),
        ];
        let args = format_args!("STOR /a 1");
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("ftpdlib")
            .args(args)
            .key_values(&kvs)
            .build();
        let text = render(Format::Json, &record);
        assert!(
            text.ends_with('\n') && text.matches('\n').count() == 1,
            "{text}"
        );
        let v: Json = serde_json::from_str(&text).unwrap();
        assert_eq!(v["bytes"], 10);
        assert_eq!(v["seconds"], 0.5);
        assert_eq!(v["completed"], true);
        assert_eq!(v["path"], "/a \"b\"");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "ftpdlib");
        assert_eq!(v["message"], "STOR /a 1");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn control_characters_cannot_forge_a_text_line() {
        let args = format_args!("DELE /no\x1b]0;title\x07pe\rfake\x00\u{9b}line");
        let record = log::Record::builder()
            .level(log::Level::Info)
            .target("ftpdlib")
            .args(args)
            .build();
        let text = render(Format::Text, &record);
        assert!(
            text.ends_with("] DELE /no\\x1b]0;title\\x07pe\\x0dfake\\x00\\u{9b}line\n"),
            "{text}"
        );
        assert_eq!(text.chars().filter(|c| c.is_control()).count(), 1, "{text}");
    }

    #[test]
    fn text_is_env_loggers_layout() {
        let args = format_args!("two\nlines");
        let record = log::Record::builder()
            .level(log::Level::Warn)
            .target("ftpdlib::line")
            .args(args)
            .build();
        let text = render(Format::Text, &record);
        let (stamp, rest) = text.split_once(' ').unwrap();
        assert_eq!(stamp.len(), "[2026-11-29T15:50:32Z".len(), "{text}");
        assert!(stamp.starts_with('[') && stamp.ends_with('Z'), "{text}");
        assert_eq!(rest, "WARN  ftpdlib::line] two\n    lines\n");
    }
}
