//! What text output prints of registry data: anything a peer registered, shown so that it
//! cannot forge a line or drive the terminal.
//!
//! The rule, the same for `list`, `watch` and `services`: a backslash is doubled; newline,
//! carriage return and tab are shown as `\n`, `\r`, `\t`; every other control character
//! (C0, DEL, C1, e.g. ESC and BEL) as `\u{1b}`, its code point in hex. Everything else is
//! printed as it is. `-o json` is unchanged (JSON escapes control characters itself).

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with control characters and backslashes escaped; borrowed when there are none.
pub(crate) fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c == '\\' || c.is_control()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_cannot_forge_a_line_or_reach_the_terminal() {
        assert!(matches!(
            escaped("dubbo://h:1/a.B?x=1"),
            Cow::Borrowed("dubbo://h:1/a.B?x=1")
        ));
        assert_eq!(
            escaped("a=1\n+ dubbo://evil:1/a.B\r\t"),
            "a=1\\n+ dubbo://evil:1/a.B\\r\\t"
        );
        assert_eq!(escaped("\u{1b}[2J\u{7}"), "\\u{1b}[2J\\u{7}");
        assert_eq!(escaped("\u{7f}\u{85}"), "\\u{7f}\\u{85}");
        // Unambiguous: a backslash already there is doubled.
        assert_eq!(escaped("C:\\n"), "C:\\\\n");
        assert_eq!(escaped("名前"), "名前");
    }
}
