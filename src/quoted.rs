//! The start of a string a request gave (a field or source name, which may be megabytes long),
//! for an error message or a log line.

use std::fmt;

/// How many characters of a quoted string are shown.
pub const QUOTED_CHARS: usize = 64;

/// Displays at most [`QUOTED_CHARS`] characters of a string, then `…` if it was longer.
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(QUOTED_CHARS) {
            Some((end, _)) => write!(f, "{}…", &self.0[..end]),
            None => f.write_str(self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_are_cut_at_a_character() {
        assert_eq!(Quoted("jotform").to_string(), "jotform");
        let exact = "é".repeat(QUOTED_CHARS);
        assert_eq!(Quoted(&exact).to_string(), exact);
        let long = "é".repeat(QUOTED_CHARS + 1);
        assert_eq!(Quoted(&long).to_string(), format!("{exact}…"));
    }
}
