//! Query strings as the services read them: decoded `(key, value)` pairs in
//! request order (`+` is a space, `%XX` a byte), and oslo's
//! `bool_from_string` for flags such as `allow_expired` and `with_count`.

/// Decodes a query string into `(key, value)` pairs, keeping their order
/// and repeats. A pair without `=` has an empty value; empty pairs
/// (`a=1&&b=2`) are skipped and only `&` separates, as Python's
/// `parse_qsl` (which `WebOb` uses) does.
pub(crate) fn parse(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => (decode(key), decode(value)),
            None => (decode(pair), String::new()),
        })
        .collect()
}

/// Percent-decodes one component; `+` is a space. Invalid escapes are kept
/// as written and invalid UTF-8 is replaced, so no input is refused.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let high = bytes.get(i + 1).and_then(|b| hex_digit(*b));
                let low = bytes.get(i + 2).and_then(|b| hex_digit(*b));
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high * 16 + low);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// oslo's `bool_from_string(strict=False)`: `true`, `1`, `yes`, `on`, `y`,
/// `t` (any case, surrounding spaces ignored) are true, anything else false.
pub(crate) fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "y" | "t"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs_in_order() {
        let pairs = parse(Some(
            "name=a+b&status=%61vailable&flag&&bad=%zz&x=%E2%9C%93",
        ));
        let expected: Vec<(String, String)> = [
            ("name", "a b"),
            ("status", "available"),
            ("flag", ""),
            ("bad", "%zz"),
            ("x", "\u{2713}"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(pairs, expected);
        assert!(parse(None).is_empty());
        assert_eq!(parse(Some("a=%")), vec![("a".to_owned(), "%".to_owned())]);
    }

    #[test]
    fn truthy_like_oslo() {
        for yes in ["true", "True", "1", "yes", "ON", "y", "t", " true "] {
            assert!(truthy(yes), "{yes}");
        }
        for no in ["false", "0", "no", "", "2", "truth"] {
            assert!(!truthy(no), "{no}");
        }
    }
}
