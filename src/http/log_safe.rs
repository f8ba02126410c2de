//! Request-derived text made safe to log: control and other unprintable characters escaped, so
//! a decoded `%0A` in a path segment cannot start a forged line in the pretty log format.

use std::fmt;

/// Displays a string with [`str::escape_debug`] (`\n`, `\u{202e}`, `\"` …), without quotes.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.escape_debug(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        let shown = Escaped("a\nforged\r\u{202e}x\"").to_string();
        assert_eq!(shown, r#"a\nforged\r\u{202e}x\""#);
        assert!(!shown.contains('\n'));
        assert_eq!(Escaped("jotform").to_string(), "jotform");
    }
}
