//! HTTP/1.1 message framing: where a head ends and how much body follows it
//! (`Content-Length`, chunked coding, or until the connection closes), fed a chunk at a
//! time, as the bytes arrive on a proxied connection.

/// How much body is left in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Length(u64),
    Chunked(Chunked),
    /// Until the connection closes (a response without a length).
    UntilClose,
}

/// The chunked-coding decoder, far enough to find the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunked {
    /// Reading a chunk-size line.
    Size(Vec<u8>),
    /// Inside a chunk's data; then its CRLF.
    Data(u64),
    Crlf(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailer(Vec<u8>),
    Done,
}

impl Default for Chunked {
    /// At the first chunk-size line.
    fn default() -> Self {
        Self::Size(Vec::new())
    }
}

impl Chunked {
    /// Consumes bytes of `data` up to the end of the body; returns how many, or `None`
    /// when the coding is broken.
    pub fn consume(&mut self, data: &[u8]) -> Option<usize> {
        let mut used = 0;
        while used < data.len() && *self != Self::Done {
            let rest = &data[used..];
            match self {
                Self::Size(line) => {
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(rest);
                        used += rest.len();
                        if line.len() > 1024 {
                            return None;
                        }
                        continue;
                    };
                    line.extend_from_slice(&rest[..=end]);
                    used += end + 1;
                    let text = std::str::from_utf8(line).ok()?;
                    let digits = text.trim().split(';').next()?.trim();
                    let size = u64::from_str_radix(digits, 16).ok()?;
                    *self = if size == 0 {
                        Self::Trailer(Vec::new())
                    } else {
                        Self::Data(size)
                    };
                }
                Self::Data(left) => {
                    let take = (*left).min(rest.len() as u64);
                    used += take as usize;
                    *left -= take;
                    if *left == 0 {
                        *self = Self::Crlf(2);
                    }
                }
                Self::Crlf(left) => {
                    used += 1;
                    *left -= 1;
                    if *left == 0 {
                        *self = Self::default();
                    }
                }
                Self::Trailer(line) => {
                    let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(rest);
                        used += rest.len();
                        continue;
                    };
                    used += end + 1;
                    let empty = line.is_empty() || line.as_slice() == b"\r";
                    line.clear();
                    if empty {
                        *self = Self::Done;
                    }
                }
                Self::Done => {}
            }
        }
        Some(used)
    }
}

impl Body {
    /// Consumes body bytes from `data`; returns how many and whether the body ended.
    pub fn consume(&mut self, data: &[u8]) -> Option<(usize, bool)> {
        match self {
            Self::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                Some((take as usize, *left == 0))
            }
            Self::Chunked(chunked) => {
                let used = chunked.consume(data)?;
                Some((used, *chunked == Chunked::Done))
            }
            Self::UntilClose => Some((data.len(), false)),
        }
    }
}

pub fn header<'h>(headers: &'h [httparse::Header<'_>], name: &str) -> Option<&'h [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|v| {
        String::from_utf8_lossy(v)
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

/// The body a message's headers announce; `None`: a malformed length (opaque).
pub fn framing(headers: &[httparse::Header<'_>], default: Body) -> Option<Body> {
    if has_token(header(headers, "transfer-encoding"), "chunked") {
        return Some(Body::Chunked(Chunked::default()));
    }
    match header(headers, "content-length") {
        Some(value) => std::str::from_utf8(value)
            .ok()?
            .trim()
            .parse()
            .ok()
            .map(Body::Length),
        None => Some(default),
    }
}

/// The end of a head (after its blank line) in `head`, searching from `from`.
pub fn head_end(head: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    head[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| start + i + 4)
}
