//! Lingering close: the end of every connection.

use std::time::Duration;

/// How long, and how many bytes, a closing connection still reads and discards.
const LINGER: Duration = Duration::from_secs(5);
const LINGER_BYTES: usize = 32 << 20;

/// Lingering close (RFC 9112 section 9.6). A reply sent before the request body was read (the
/// API refusing a large body at its first bad element) is followed by hyper's shutdown of our
/// write side; if the socket were then closed with the client's body still arriving, the kernel
/// would answer with a reset, and the client's kernel would drop the reply it has not read yet.
/// So the rest of the body is read and discarded, within a bound, before the socket is closed.
pub(super) async fn linger(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = LINGER_BYTES;
    let drain = async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}
