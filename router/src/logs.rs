//! Log lines (stderr) and events (stdout), as JSON lines like the gateway's own.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

fn timestamp() -> String {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil date from days since 1970-01-01 (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

fn level_rank(level: &str) -> u8 {
    match level {
        "DEBUG" => 10,
        "INFO" => 20,
        "WARNING" | "WARN" => 30,
        "ERROR" => 40,
        _ => 50,
    }
}

/// APT_LOG_LEVEL, as the gateway reads it (default INFO).
fn min_level() -> u8 {
    static MIN: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| level_rank(&std::env::var("APT_LOG_LEVEL").unwrap_or_else(|_| "INFO".into()).to_uppercase()))
}

pub fn log_line(level: &str, msg: &str, fields: serde_json::Map<String, serde_json::Value>) {
    if level_rank(level) < min_level() {
        return;
    }
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), timestamp().into());
    line.insert("level".into(), level.into());
    line.insert("service".into(), "gateway".into());
    line.insert("logger".into(), "apt-router".into());
    line.insert("msg".into(), msg.into());
    line.extend(fields);
    // one write(2) a line: stderr is unbuffered, and writing the JSON straight to it made one
    // syscall per fragment (about 90 for a call's line, most of apt-router's time per unary call)
    let mut buf = serde_json::to_vec(&serde_json::Value::Object(line)).unwrap_or_default();
    buf.push(b'\n');
    let _ = std::io::stderr().lock().write_all(&buf);
}

pub fn log(level: &str, msg: &str) {
    log_line(level, msg, serde_json::Map::new());
}

pub fn event(value: serde_json::Value) {
    let mut buf = value.to_string().into_bytes();
    buf.push(b'\n');
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&buf);
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_iso8601_with_milliseconds() {
        let ts = timestamp();
        assert_eq!(ts.len(), "2026-11-26T07:33:57.035Z".len());
        assert!(ts.starts_with("20") && ts.ends_with('Z') && &ts[10..11] == "T");
    }
}
