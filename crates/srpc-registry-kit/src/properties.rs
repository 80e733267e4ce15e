//! Java's `.properties` format, as `java.util.Properties` reads (`load`) and writes (`store`)
//! it: the format of Dubbo's registry cache file, so that Java and srpc can share one.
//!
//! Reading is lenient where Java is strict: a line Java would reject (a malformed `\uXXXX`
//! escape, say) is skipped and reported, and the rest of the file is still read.

use std::fmt::Write as _;

/// One entry read from a file, or why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Line {
    /// `key=value`.
    Entry(String, String),
    /// A logical line that could not be read (its number, 1-based, and the reason).
    Skipped(usize, String),
}

/// Reads a properties file. The bytes are ISO-8859-1, as Java reads them (every byte is a
/// character, so no input is unreadable as text); escapes are then resolved.
pub(crate) fn parse(bytes: &[u8]) -> Vec<Line> {
    let text: String = bytes.iter().map(|b| char::from(*b)).collect();
    let mut lines = Vec::new();
    let mut natural = split_lines(&text).into_iter().enumerate().peekable();
    while let Some((index, first)) = natural.next() {
        let start = first.trim_start_matches([' ', '\t', '\x0c']);
        if start.is_empty() || start.starts_with('#') || start.starts_with('!') {
            continue;
        }
        // A line ending in an odd number of backslashes continues on the next one, whose
        // leading white space is dropped.
        let mut logical = String::from(start);
        while ends_in_odd_backslashes(&logical) {
            logical.pop();
            match natural.next() {
                Some((_, next)) => logical.push_str(next.trim_start_matches([' ', '\t', '\x0c'])),
                None => break,
            }
        }
        lines.push(match split_entry(&logical) {
            Ok((key, value)) => Line::Entry(key, value),
            Err(reason) => Line::Skipped(index + 1, reason),
        });
    }
    lines
}

/// The entries of a properties file, without the lines that could not be read.
pub(crate) fn entries(bytes: &[u8]) -> impl Iterator<Item = (String, String)> {
    parse(bytes).into_iter().filter_map(|line| match line {
        Line::Entry(key, value) => Some((key, value)),
        Line::Skipped(..) => None,
    })
}

/// Writes entries as `Properties.store` does: the comment line, a date line, then one
/// `key=value` line each, escaped so that the file is ASCII.
pub(crate) fn write<'a>(
    comment: &str,
    date: &str,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "#{comment}");
    let _ = writeln!(out, "#{date}");
    for (key, value) in entries {
        escape(&mut out, key, true);
        out.push('=');
        escape(&mut out, value, false);
        out.push('\n');
    }
    out
}

fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        match rest.find(['\n', '\r']) {
            Some(at) => {
                lines.push(&rest[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                lines.push(rest);
                rest = "";
            }
        }
    }
    lines
}

fn ends_in_odd_backslashes(line: &str) -> bool {
    line.bytes().rev().take_while(|b| *b == b'\\').count() % 2 == 1
}

/// Splits a logical line into its unescaped key and value.
fn split_entry(line: &str) -> Result<(String, String), String> {
    // The key ends at the first unescaped '=', ':' or white space.
    let mut end = line.len();
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, '=' | ':' | ' ' | '\t' | '\x0c') {
            end = at;
            break;
        }
    }
    let key = &line[..end];
    let mut value = line[end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(rest) = value.strip_prefix(['=', ':']) {
        value = rest.trim_start_matches([' ', '\t', '\x0c']);
    }
    Ok((unescape(key)?, unescape(value)?))
}

fn unescape(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("malformed \\uxxxx escape: \\u{hex}"))?;
                // A character beyond U+FFFF is two escapes (a surrogate pair); a lone
                // surrogate becomes U+FFFD.
                let code = match low_surrogate_after(&mut chars, code) {
                    Some(low) => 0x1_0000 + ((code - 0xD800) << 10) + (low - 0xDC00),
                    None => code,
                };
                out.push(char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

/// When `high` is a high surrogate and `\uXXXX` with a low one follows, takes and returns it.
fn low_surrogate_after(chars: &mut std::str::Chars<'_>, high: u32) -> Option<u32> {
    if !(0xD800..0xDC00).contains(&high) {
        return None;
    }
    let mut ahead = chars.clone();
    if ahead.next() != Some('\\') || ahead.next() != Some('u') {
        return None;
    }
    let hex: String = ahead.by_ref().take(4).collect();
    let low = u32::from_str_radix(&hex, 16).ok()?;
    if hex.len() != 4 || !(0xDC00..0xE000).contains(&low) {
        return None;
    }
    *chars = ahead;
    Some(low)
}

fn escape(out: &mut String, text: &str, key: bool) {
    for (at, c) in text.chars().enumerate() {
        match c {
            ' ' if key || at == 0 => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04X}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String)> {
        super::entries(text.as_bytes()).collect()
    }

    #[test]
    fn reads_what_java_dubbo_writes() {
        // As the JDK stores a Dubbo cache entry (dubbo.md §2.4).
        let file = "#Dubbo Registry Cache\n#Sun Nov 22 10:35:58 UTC 2026\n\
            grp/com.foo.Bar\\:1.0.0=dubbo\\://10.0.0.1\\:20880/com.foo.Bar?a\\=1 empty\\://0.0.0.0/com.foo.Bar?category\\=routers\n";
        assert_eq!(
            entries(file),
            [(
                "grp/com.foo.Bar:1.0.0".to_owned(),
                "dubbo://10.0.0.1:20880/com.foo.Bar?a=1 empty://0.0.0.0/com.foo.Bar?category=routers"
                    .to_owned()
            )]
        );
    }

    #[test]
    fn follows_the_load_rules() {
        let file = "  ! comment\r\n\n a b\\\n   c\nk2 : v2\r\nk\\ 3=\\u00e9\\t\\\\\nonly\n";
        assert_eq!(
            entries(file),
            [
                ("a".to_owned(), "bc".to_owned()),
                ("k2".to_owned(), "v2".to_owned()),
                ("k 3".to_owned(), "é\t\\".to_owned()),
                ("only".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn a_bad_line_is_skipped_and_the_rest_read() {
        let lines = parse(b"a=1\nb=\\u12\nc=3\n\xff\xfe=\x00\n");
        assert_eq!(lines[0], Line::Entry("a".into(), "1".into()));
        assert!(matches!(&lines[1], Line::Skipped(2, reason) if reason.contains("\\u12")));
        assert_eq!(lines[2], Line::Entry("c".into(), "3".into()));
        assert_eq!(lines[3], Line::Entry("ÿþ".into(), "\0".into()));
    }

    #[test]
    fn what_is_written_reads_back() {
        let pairs = [
            ("g/a.B:1.0", "dubbo://10.0.0.1:20880/a.B?x=1&y=é 😀 #!"),
            (" lead", " spaced value\nline"),
        ];
        let text = write("Dubbo Registry Cache", "date", pairs);
        assert!(text.is_ascii(), "{text}");
        assert!(text.starts_with("#Dubbo Registry Cache\n#date\n"));
        assert!(text.contains(
            "g/a.B\\:1.0=dubbo\\://10.0.0.1\\:20880/a.B?x\\=1&y\\=\\u00E9 \\uD83D\\uDE00 \\#\\!"
        ));
        let expected: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(entries(&text), expected);
    }
}
