//! HTTP/1.1 as a browser speaks it, without a browser: a raw request on a
//! fresh connection ([`http`]) and grpc-web calls made of one
//! ([`grpc_web`]), so tests can send exactly the bytes a page would, or a
//! page that lies would (another customer's id, a forged origin).

use prost::Message;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An HTTP response, its body de-chunked.
#[derive(Debug, Clone)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text()))
    }
}

/// `method path` on `addr` with `headers` and `body`, on its own
/// connection (`Connection: close`).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|error| panic!("connect to {addr}: {error}"));
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    stream.write_all(body).await.expect("send the body");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .await
        .expect("read the response");
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> HttpReply {
    let end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    HttpReply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|window| window == b"\r\n") else {
            return body;
        };
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

/// What a grpc-web call answered.
#[derive(Debug, Clone)]
pub struct GrpcWebReply<R> {
    /// The HTTP response.
    pub http: HttpReply,
    /// The `grpc-status` (headers of a trailers-only answer, or the trailer
    /// frame).
    pub code: tonic::Code,
    /// The `grpc-message`, percent-decoded.
    pub message: String,
    /// The reply message, when there was one.
    pub reply: Option<R>,
}

/// A grpc-web call of `path` (e.g. `/nudge.v1.Decisions/Decide`) with
/// `request`, the grpc-web headers and `headers` (a customer token, an
/// origin), as a page's `fetch` sends it.
pub async fn grpc_web<M: Message, R: Message + Default>(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    request: &M,
) -> GrpcWebReply<R> {
    let message = request.encode_to_vec();
    let mut body = Vec::with_capacity(message.len() + 5);
    body.push(0);
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(&message);
    let mut all = vec![
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("accept", "application/grpc-web+proto"),
    ];
    all.extend_from_slice(headers);
    let http = http(addr, "POST", path, &all, &body).await;
    let mut status = http.header("grpc-status").map(str::to_owned);
    let mut grpc_message = http.header("grpc-message").map(str::to_owned);
    let mut reply = None;
    let mut frames = http.body.as_slice();
    while frames.len() >= 5 {
        let flag = frames[0];
        let length = u32::from_be_bytes([frames[1], frames[2], frames[3], frames[4]]) as usize;
        let payload = &frames[5..5 + length];
        if flag & 0x80 == 0 {
            reply = Some(R::decode(payload).expect("a reply message"));
        } else {
            for line in String::from_utf8_lossy(payload).split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    match name.trim().to_ascii_lowercase().as_str() {
                        "grpc-status" => status = Some(value.trim().to_owned()),
                        "grpc-message" => grpc_message = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
            }
        }
        frames = &frames[5 + length..];
    }
    let code = status
        .as_deref()
        .and_then(|code| code.parse::<i32>().ok())
        .map_or(tonic::Code::Unknown, tonic::Code::from_i32);
    GrpcWebReply {
        http,
        code,
        message: percent_decode(grpc_message.as_deref().unwrap_or_default()),
        reply,
    }
}

/// `%XX` sequences decoded (grpc-message's encoding).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&text[index + 1..index + 3], 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_joined() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let reply = parse_response(raw);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-a"), Some("b"));
        assert_eq!(reply.body, b"abcde");
    }

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(percent_decode("a%20b%3A c"), "a b: c");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
