//! Country names and codes → ISO 3166-1 alpha-2 (`"United States"`, `"USA"`, `"us"` → `US`),
//! from the table in `countries.txt` (Debian iso-codes names plus common spellings).

use std::collections::HashMap;
use std::sync::OnceLock;

/// One country per line: `alpha-2|alpha-3|name|other names…`; `#` lines are comments.
const TABLE: &str = include_str!("countries.txt");

/// The ISO 3166-1 alpha-2 code of a country written as its alpha-2 or alpha-3 code or an
/// English (or listed local) name, ignoring case, dots and extra spaces; `None` if unknown.
pub fn country_code(raw: &str) -> Option<&'static str> {
    index().get(&key(raw)).copied()
}

fn index() -> &'static HashMap<String, &'static str> {
    static INDEX: OnceLock<HashMap<String, &'static str>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut map = HashMap::new();
        for line in TABLE.lines().filter(|l| !l.starts_with('#')) {
            let mut names = line.split('|');
            let Some(code) = names.next().filter(|c| c.len() == 2) else {
                continue;
            };
            map.entry(key(code)).or_insert(code);
            for name in names {
                map.entry(key(name)).or_insert(code);
            }
        }
        map
    })
}

fn key(text: &str) -> String {
    let lower = text.to_lowercase().replace('.', "");
    let words: Vec<&str> = lower.split_whitespace().collect();
    let words = match words.split_first() {
        Some((&"the", rest)) if !rest.is_empty() => rest,
        _ => &words[..],
    };
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_become_alpha_2() {
        for (raw, code) in [
            ("United States", "US"),
            ("USA", "US"),
            ("us", "US"),
            ("U.S.A.", "US"),
            (" united  states of america ", "US"),
            ("Deutschland", "DE"),
            ("DEU", "DE"),
            ("Germany", "DE"),
            ("UK", "GB"),
            ("the Netherlands", "NL"),
            ("Russia", "RU"),
            ("Côte d'Ivoire", "CI"),
        ] {
            assert_eq!(country_code(raw), Some(code), "{raw}");
        }
        assert_eq!(country_code("Atlantis"), None);
        assert_eq!(country_code(""), None);
        assert!(index().len() > 700);
    }
}
