//! Logging straight into the systemd journal with structured fields. An
//! edge module: a `tracing` layer over a Unix datagram socket.
//!
//! Why not only the `tracing-journald` crate: it sends an event's message
//! alone as `MESSAGE`, so `journalctl -u adsb-kinesis -f` would print
//! `stats` or `kinesis stats` with every number hidden in fields that only
//! `-o verbose`/`-o json` show. Here `MESSAGE` carries the message and its
//! fields the way the terminal format shows them (`stats frames_per_s=12.3
//! lines=345 ...`), and each field is also a journal field of its own
//! (`ADSB_FRAMES_PER_S=12.3`), so `journalctl ADSB_ICAO=4840D6` and
//! `-o json` work.
//!
//! The protocol is the journal's native one (systemd.io, "Native Journal
//! Protocol"): one datagram per entry to `/run/systemd/journal/socket`,
//! each field `NAME=value\n`, or, when the value holds a newline,
//! `NAME\n`, its length as a 64-bit little-endian number, the value and
//! `\n`. Field names are upper-case ASCII letters, digits and `_`, not
//! starting with `_` or a digit (journald drops other fields).

use std::fmt::{self, Write as _};
use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Where journald listens for native entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// Prefix of our own fields: `icao` becomes `ADSB_ICAO`.
pub const FIELD_PREFIX: &str = "ADSB_";
/// An entry larger than this is cut (journald takes bigger ones only
/// through a memfd, which our short lines never need).
const MAX_ENTRY: usize = 64 * 1024;

/// A `tracing` layer that writes each event as one journal entry.
pub struct JournalLayer {
    sock: UnixDatagram,
    path: PathBuf,
    identifier: String,
}

impl JournalLayer {
    /// Connects to journald at `path` (normally [`JOURNAL_SOCKET`]); fails
    /// if nothing listens there.
    pub fn new(path: &Path, identifier: &str) -> io::Result<JournalLayer> {
        let sock = UnixDatagram::unbound()?;
        // Fails now, not at the first event, if journald is not there.
        sock.connect(path)?;
        Ok(JournalLayer {
            sock,
            path: path.to_path_buf(),
            identifier: identifier.to_owned(),
        })
    }

    fn send(&self, entry: &[u8]) {
        // A lost log line must not stop the receiver; journald being
        // restarted makes the socket go away for a moment, so reconnect once.
        if self.sock.send(entry).is_err() {
            if let Ok(s) = UnixDatagram::unbound() {
                if s.connect(&self.path).is_ok() {
                    let _ = s.send(entry);
                }
            }
        }
    }
}

/// syslog priority of a level (syslog(3): 3 err, 4 warning, 6 info, 7 debug).
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// `icao` -> `ADSB_ICAO`: upper case, anything else than letters and
/// digits becomes `_`.
pub fn field_name(name: &str) -> String {
    let mut s = String::with_capacity(FIELD_PREFIX.len() + name.len());
    s.push_str(FIELD_PREFIX);
    for c in name.chars() {
        s.push(if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        });
    }
    s
}

/// Appends one field in the native protocol's framing.
pub fn put_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(&'static str, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            self.fields.push((field.name(), value.to_owned()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields.push((field.name(), text));
        }
    }
}

impl<S: Subscriber> Layer<S> for JournalLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let meta = event.metadata();
        // MESSAGE as the terminal shows it: the text, then key=value.
        let mut message = f.message;
        for (k, v) in &f.fields {
            if v.contains(char::is_whitespace) || v.is_empty() {
                let _ = write!(message, " {k}={v:?}");
            } else {
                let _ = write!(message, " {k}={v}");
            }
        }
        let mut e = Vec::with_capacity(256 + message.len());
        put_field(&mut e, "MESSAGE", message.as_bytes());
        put_field(
            &mut e,
            "PRIORITY",
            priority(meta.level()).to_string().as_bytes(),
        );
        put_field(&mut e, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        put_field(&mut e, "TARGET", meta.target().as_bytes());
        if let Some(file) = meta.file() {
            put_field(&mut e, "CODE_FILE", file.as_bytes());
        }
        if let Some(line) = meta.line() {
            put_field(&mut e, "CODE_LINE", line.to_string().as_bytes());
        }
        for (k, v) in &f.fields {
            put_field(&mut e, &field_name(k), v.as_bytes());
        }
        if e.len() > MAX_ENTRY {
            // Keep the standard fields; say that the rest was cut.
            e.clear();
            let cut: String = message.chars().take(MAX_ENTRY / 2).collect();
            put_field(&mut e, "MESSAGE", format!("{cut} [cut]").as_bytes());
            put_field(
                &mut e,
                "PRIORITY",
                priority(meta.level()).to_string().as_bytes(),
            );
            put_field(&mut e, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        }
        self.send(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_framing_follows_the_native_protocol() {
        let mut out = Vec::new();
        put_field(&mut out, "MESSAGE", b"stats lines=3");
        assert_eq!(out, b"MESSAGE=stats lines=3\n");
        out.clear();
        put_field(&mut out, "MESSAGE", b"a\nb");
        let mut want = b"MESSAGE\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"a\nb\n");
        assert_eq!(out, want);
    }

    #[test]
    fn field_names_are_journal_names() {
        assert_eq!(field_name("icao"), "ADSB_ICAO");
        assert_eq!(field_name("frames_per_s"), "ADSB_FRAMES_PER_S");
        assert_eq!(field_name("a.b-c"), "ADSB_A_B_C");
    }

    #[test]
    fn events_arrive_as_entries_with_fields() {
        use tracing_subscriber::layer::SubscriberExt;
        let dir = std::env::temp_dir().join(format!("adsbk-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        let layer = JournalLayer::new(&path, "adsb-kinesis").unwrap();
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::warn!(icao = %"4840D6", lines = 3u64, reason = "two words", "seen");
        });
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8(buf[..n].to_vec()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.contains(&"MESSAGE=seen icao=4840D6 lines=3 reason=\"two words\""),
            "{text}"
        );
        for want in [
            "PRIORITY=4",
            "SYSLOG_IDENTIFIER=adsb-kinesis",
            "ADSB_ICAO=4840D6",
            "ADSB_LINES=3",
            "ADSB_REASON=two words",
        ] {
            assert!(lines.contains(&want), "{want} missing in {text}");
        }
        std::fs::remove_dir_all(&dir).ok();
        assert!(JournalLayer::new(&dir.join("nothing"), "x").is_err());
    }
}
