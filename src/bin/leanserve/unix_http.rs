//! One HTTP/1.1 request over a Unix socket, for the admin surface on `admin.bind =
//! "unix:PATH"`: the request with `Connection: close`, then the status and the body,
//! read to the end of the connection (`Content-Length` and chunked bodies both handled).

use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use super::client::TIMEOUT;

/// Sends `method path` (with the bearer `token`) and answers the status and the body,
/// refusing answers over `limit` bytes.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    token: Option<&str>,
    limit: usize,
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let authorization = token.map_or_else(String::new, |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: 0\r\n{authorization}\r\n"
    )?;
    let mut answer = Vec::new();
    stream
        .take(limit as u64 + 64 * 1024)
        .read_to_end(&mut answer)?;
    parse(&answer, limit)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("bad HTTP answer: {what}"),
    )
}

/// The status and body of one whole HTTP/1.1 response.
fn parse(answer: &[u8], limit: usize) -> io::Result<(u16, Vec<u8>)> {
    let end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let head = std::str::from_utf8(&answer[..end]).map_err(|_| invalid("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    };
    let rest = &answer[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("Content-Length"))?;
        rest.get(..length)
            .ok_or_else(|| invalid("body shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() > limit {
        return Err(invalid("body over the size limit"));
    }
    Ok((status, body))
}

/// A chunked body's bytes.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or_else(|| invalid("chunk size line"))?;
        let size_text =
            std::str::from_utf8(&rest[..line_end]).map_err(|_| invalid("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or_else(|| invalid("truncated chunk"))?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size + 2..)
            .ok_or_else(|| invalid("truncated chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_http_reads_sized_and_chunked_bodies() {
        let sized =
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-type: text/plain\r\n\r\nhello";
        assert_eq!(parse(sized, 100).unwrap(), (200, b"hello".to_vec()));
        let chunked =
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse(chunked, 100).unwrap(), (401, b"abcde".to_vec()));
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort", 100).is_err());
        assert!(parse(b"garbage", 100).is_err());
        assert!(parse(sized, 4).is_err(), "over the limit");
    }
}
