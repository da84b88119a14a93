//! Network pieces the request-path tests put between the proxy and the gateway, all on
//! loopback: a TCP relay whose connections can be cut (a gateway killed mid-answer), a
//! SOCKS5 server (the way a user behind Tor reaches a gateway), and a server that
//! redirects everything.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP relay to `target`; [`CutRelay::cut`] drops every open connection at once, as a
/// gateway process that dies does. New connections are relayed again afterwards.
pub struct CutRelay {
    pub addr: SocketAddr,
    open: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl CutRelay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let open: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tasks = Arc::clone(&open);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                tasks.lock().expect("relay tasks").push(task);
            }
        });
        Self { addr, open }
    }

    /// Drops every connection open now (both sides see the socket close mid-stream).
    pub fn cut(&self) {
        for task in self.open.lock().expect("relay tasks").drain(..) {
            task.abort();
        }
    }
}

/// A SOCKS5 server (RFC 1928, no authentication, CONNECT only) that resolves names
/// itself from `names`, as Tor resolves `.onion` names: a client that sends a request
/// anywhere but through it cannot even find the host.
pub struct Socks5 {
    pub addr: SocketAddr,
    /// Connections it relayed.
    pub relayed: Arc<AtomicUsize>,
}

impl Socks5 {
    pub async fn start(names: HashMap<String, SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind socks");
        let addr = listener.local_addr().expect("socks addr");
        let relayed = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&relayed);
        let names = Arc::new(names);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let names = Arc::clone(&names);
                let count = Arc::clone(&count);
                tokio::spawn(async move {
                    if let Ok(mut target) = handshake(socket, &names).await {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = tokio::io::copy_bidirectional(&mut target.0, &mut target.1).await;
                    }
                });
            }
        });
        Self { addr, relayed }
    }
}

async fn handshake(
    mut client: TcpStream,
    names: &HashMap<String, SocketAddr>,
) -> std::io::Result<(TcpStream, TcpStream)> {
    let bad = |what: &str| std::io::Error::other(what.to_owned());
    // Greeting: version 5, methods; we take "no authentication".
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(bad("not SOCKS5"));
    }
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Err(bad("no acceptable method"));
    }
    client.write_all(&[5, 0]).await?;
    // Request: version, CONNECT, reserved, address type.
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[1] != 1 {
        client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Err(bad("only CONNECT"));
    }
    let target = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            let port = client.read_u16().await?;
            SocketAddr::from((ip, port))
        }
        3 => {
            let len = client.read_u8().await?;
            let mut name = vec![0u8; usize::from(len)];
            client.read_exact(&mut name).await?;
            let port = client.read_u16().await?;
            let name = String::from_utf8_lossy(&name).to_string();
            match names.get(&name) {
                Some(addr) => SocketAddr::new(addr.ip(), port),
                None => {
                    // Host unreachable.
                    client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
                    return Err(bad("unknown name"));
                }
            }
        }
        _ => {
            client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Err(bad("address type"));
        }
    };
    let upstream = TcpStream::connect(target).await?;
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    Ok((client, upstream))
}

/// A server that answers every request with `302 Found` to `location`, and counts them.
pub async fn redirector(location: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind redirector");
    let addr = listener.local_addr().expect("redirector addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&hits);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = location.clone();
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut seen = Vec::new();
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    (addr, hits)
}
