//! A string that must never be printed: client secrets and access tokens; and the redaction
//! of every form of a secret a server or a library may echo back.

use std::fmt;

/// A secret value (client secret, access token). `Debug` and `Display` print `***`; the only way to
/// read it is [`Secret::expose`], which should appear exactly where the value goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

/// What a redacted secret becomes.
pub const REDACTED: &str = "***";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call this only to put the value on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replaces every occurrence of the secret in `text` with `***`, in each form it may
    /// come back in (see [`Redactor`]): defence in depth for text that came back from a
    /// server or a library and might echo it.
    pub fn redact(&self, text: &str) -> String {
        Redactor::new([self.0.as_str()]).redact(text)
    }
}

/// Finds secrets in text in the forms servers and libraries echo them: as they are,
/// URL-encoded (`%XX` in either case, a space as `+` or `%20`, whatever set of characters the
/// encoder left alone), and base64 (standard and URL-safe alphabets, with or without
/// padding), also inside a longer base64 blob such as SMTP's `AUTH PLAIN \0user\0password`,
/// whatever the secret's offset in it: for each of the three alignments the characters that
/// encode the secret's bits alone are looked for (the one or two characters at each edge,
/// which mix in the neighbours' bits, stay).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Each secret's bytes, longest first (so a secret inside another goes second).
    plain: Vec<Vec<u8>>,
    /// Base64 forms, longest first.
    encoded: Vec<String>,
}

/// Base64 runs shorter than this are not looked for inside other text: they would match by
/// chance (a secret under 5 bytes is only found as it is, or in its whole encodings).
const MIN_BASE64_CORE: usize = 6;

/// The line length `base64(1)` and MIME wrap encoded text at.
const BASE64_LINE: usize = 76;

impl Redactor {
    /// A redactor for `secrets` (empty ones are ignored).
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a str>) -> Self {
        let mut plain: Vec<Vec<u8>> = Vec::new();
        let mut encoded: Vec<String> = Vec::new();
        // Output is redacted a line at a time: a secret of several lines (a PEM key) is also
        // looked for line by line.
        let mut all: Vec<&str> = Vec::new();
        for s in secrets {
            all.push(s);
            if s.contains('\n') {
                all.extend(
                    s.lines()
                        .map(str::trim)
                        .filter(|l| l.len() >= MIN_BASE64_CORE),
                );
            }
        }
        for s in all {
            if s.is_empty() {
                continue;
            }
            let bytes = s.as_bytes();
            plain.push(bytes.to_vec());
            // `base64(1)` wraps its output at 76 characters: each full line on its own.
            let wrapped = base64(bytes, false, true);
            if wrapped.len() > BASE64_LINE {
                encoded.extend(
                    wrapped
                        .as_bytes()
                        .chunks(BASE64_LINE)
                        .filter(|c| c.len() >= MIN_BASE64_CORE)
                        .map(|c| String::from_utf8_lossy(c).into_owned()),
                );
            }
            for url_safe in [false, true] {
                encoded.push(base64(bytes, url_safe, true));
                encoded.push(base64(bytes, url_safe, false));
                for offset in 0..3 {
                    let core = base64_core(bytes, offset, url_safe);
                    if core.len() >= MIN_BASE64_CORE {
                        encoded.push(core);
                    }
                }
            }
        }
        plain.sort_by_key(|p| std::cmp::Reverse(p.len()));
        plain.dedup();
        encoded.sort_by_key(|e| std::cmp::Reverse(e.len()));
        encoded.dedup();
        Self { plain, encoded }
    }

    /// Whether there is nothing to look for.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty()
    }

    /// `text` with every form of every secret replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        if self.plain.is_empty() {
            return text.to_owned();
        }
        let mut out = text.to_owned();
        for e in &self.encoded {
            if out.contains(e.as_str()) {
                out = out.replace(e.as_str(), REDACTED);
            }
        }
        for secret in &self.plain {
            out = replace_url_encoded(&out, secret);
        }
        out
    }
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redactor({} secrets)", self.plain.len())
    }
}

/// `text` with each run that is `secret` with any of its bytes percent-encoded (and a space
/// possibly as `+`) replaced by `***`. The plain secret is the run with none encoded.
fn replace_url_encoded(text: &str, secret: &[u8]) -> String {
    let bytes = text.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut found = false;
    while i < bytes.len() {
        if let Some(end) = match_encoded(bytes, i, secret) {
            out.extend_from_slice(REDACTED.as_bytes());
            i = end;
            found = true;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if !found {
        return text.to_owned();
    }
    // Matches start and end on character boundaries: the secret is whole characters, and
    // what stands for its bytes otherwise is ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Where a run of `text` from `start` that decodes to `secret` ends, if one does.
fn match_encoded(text: &[u8], start: usize, secret: &[u8]) -> Option<usize> {
    let mut j = start;
    for &b in secret {
        let c = *text.get(j)?;
        if c == b || (b == b' ' && c == b'+') {
            j += 1;
        } else if c == b'%' {
            let hi = hex_value(*text.get(j + 1)?)?;
            let lo = hex_value(*text.get(j + 2)?)?;
            if hi * 16 + lo != b {
                return None;
            }
            j += 3;
        } else {
            return None;
        }
    }
    Some(j)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Base64 of `bytes` (RFC 4648; `url_safe`: the `-_` alphabet).
fn base64(bytes: &[u8], url_safe: bool, pad: bool) -> String {
    const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let alphabet = if url_safe { URL_SAFE } else { STANDARD };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for k in 0..4 {
            if k < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * k)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 characters that `bytes`, found `offset` (0, 1 or 2) bytes after a multiple of
/// three in a longer encoded blob, always become, whatever surrounds them.
fn base64_core(bytes: &[u8], offset: usize, url_safe: bool) -> String {
    let mut shifted = vec![0u8; offset];
    shifted.extend_from_slice(bytes);
    let full = base64(&shifted, url_safe, false);
    let first = (8 * offset).div_ceil(6);
    let end = 8 * (offset + bytes.len()) / 6;
    full.get(first..end).unwrap_or_default().to_owned()
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::{REDACTED, Redactor, Secret, base64};

    #[test]
    fn never_printed() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(s.redact("a hunter2 b"), "a *** b");
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b"hunter2", false, true), "aHVudGVyMg==");
        assert_eq!(base64(b"hunter2", false, false), "aHVudGVyMg");
        assert_eq!(base64(b"s3cr?t>>~", false, true), "czNjcj90Pj5+");
        assert_eq!(base64(b"s3cr?t>>~", true, true), "czNjcj90Pj5-");
        assert_eq!(base64(b"", false, true), "");
    }

    #[test]
    fn url_encoded_forms_are_redacted() {
        let s = Secret::new("p@ss word/+&=");
        for echoed in [
            "p%40ss+word%2F%2B%26%3D",
            "p%40ss%20word%2F%2B%26%3D",
            "p%40ss%20word%2f%2b%26%3d",
            // An encoder that leaves `@` and `/` alone.
            "p@ss%20word/%2B%26%3D",
        ] {
            let text = format!("GET /identity/oauth/token?client_secret={echoed}&x=1 failed");
            assert_eq!(
                s.redact(&text),
                "GET /identity/oauth/token?client_secret=***&x=1 failed",
                "{echoed}"
            );
        }
        // `+` is a space only where the secret has one.
        assert_eq!(Secret::new("a+b").redact("a+b a%2Bb a b"), "*** *** a b");
    }

    #[test]
    fn base64_forms_are_redacted() {
        let s = Secret::new("s3cr?t>>~");
        for echoed in ["czNjcj90Pj5+", "czNjcj90Pj5-"] {
            assert_eq!(
                s.redact(&format!("token {echoed}.")),
                "token ***.",
                "{echoed}"
            );
        }
        let s = Secret::new("hunter2");
        assert_eq!(s.redact("x aHVudGVyMg== y"), "x *** y");
        assert_eq!(s.redact("x aHVudGVyMg y"), "x *** y");
    }

    #[test]
    fn a_secret_inside_a_longer_base64_blob_is_found_at_every_alignment() {
        let s = Secret::new("hunter2-xyz");
        // SMTP AUTH PLAIN `\0user\0password` with users of each length mod 3, as servers
        // echo it in a 535 reply.
        for (blob, user) in [
            ("AGJvYgBodW50ZXIyLXh5eg==", "bob"),
            (
                "AGJvYkBleGFtcGxlLmNvbQBodW50ZXIyLXh5eg==",
                "bob@example.com",
            ),
            ("AHgAaHVudGVyMi14eXo=", "x"),
            ("AGFiAGh1bnRlcjIteHl6", "ab"),
        ] {
            let reply = format!("535 5.7.8 Authentication failed: AUTH PLAIN {blob}");
            let redacted = s.redact(&reply);
            assert!(redacted.contains("***"), "{user}: {redacted}");
            assert!(
                !redacted.contains(&blob[blob.len() / 2..]),
                "{user}: {redacted}"
            );
        }
        // AUTH LOGIN sends the password alone.
        assert_eq!(
            s.redact("334 UGFzc3dvcmQ6 aHVudGVyMi14eXo="),
            "334 UGFzc3dvcmQ6 ***"
        );
        // A token in a longer URL-safe blob.
        let t = Secret::new("s3cr?t>>~");
        let blob = "dXNlcj1ib2IBYXV0aD1CZWFyZXIgczNjcj90Pj5+AQE=";
        assert!(t.redact(blob).contains("***"), "{}", t.redact(blob));
    }

    #[test]
    fn several_secrets_and_nothing_else() {
        let r = Redactor::new(["alpha-secret-1", "beta-secret-22", ""]);
        assert_eq!(
            r.redact("alpha-secret-1 and YmV0YS1zZWNyZXQtMjI= and plain text"),
            "*** and *** and plain text"
        );
        assert_eq!(
            r.redact("nothing here: abc%20def"),
            "nothing here: abc%20def"
        );
        assert!(Redactor::new([""]).is_empty());
        assert_eq!(Redactor::new([""]).redact("text"), "text");
        assert_eq!(
            Secret::new("é-secret").redact("x é-secret y %C3%A9-secret"),
            "x *** y ***"
        );
    }

    #[test]
    fn secrets_spread_over_lines_are_redacted_line_by_line() {
        let key = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END KEY-----";
        let r = Redactor::new([key]);
        for line in key.lines() {
            assert_eq!(r.redact(line), REDACTED, "{line}");
        }
        // A long secret's base64, as `base64(1)` prints it: wrapped at 76 characters.
        let long = "t0k3n-".repeat(20);
        let wrapped = base64(long.as_bytes(), false, true);
        let r = Redactor::new([long.as_str()]);
        for line in wrapped.as_bytes().chunks(76) {
            let line = String::from_utf8_lossy(line);
            assert!(
                !r.redact(&line).contains(&line[..line.len().min(20)]),
                "{line}"
            );
        }
    }
}
