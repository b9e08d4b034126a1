//! The JSON line of one record, in femme's shape: `{"level":30,"time":<unix ms>,"msg":"…"}`, with
//! femme's numeric levels and the message ASCII-escaped. The text format is `text.rs`.

use consular_core::encoding::json_ascii_string;
use log::Level;

/// One record as a JSON line.
pub fn format_line(level: Level, unix_millis: u128, message: &str) -> String {
    let level = match level {
        Level::Trace => 10,
        Level::Debug => 20,
        Level::Info => 30,
        Level::Warn => 40,
        Level::Error => 50,
    };
    format!(
        "{{\"level\":{level},\"time\":{unix_millis},\"msg\":{}}}\n",
        json_ascii_string(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_femme_shaped_json_lines() {
        assert_eq!(
            format_line(Level::Warn, 1_700_000_000_123, "agent \"h\" is\ndown: é"),
            "{\"level\":40,\"time\":1700000000123,\"msg\":\"agent \\\"h\\\" is\\ndown: \\u00e9\"}\n"
        );
    }
}
