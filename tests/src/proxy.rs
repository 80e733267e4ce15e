//! A TCP proxy on loopback that a test can cut and restore, to partition a client from its
//! server (e.g. long enough for ZooKeeper to expire the session).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinHandle};

/// Forwards connections from its own loopback port to `target` while not cut.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    cut: watch::Sender<bool>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// Starts forwarding `127.0.0.1:<free port>` to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (cut, cut_rx) = watch::channel(false);
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let live = connections.clone();
        let acceptor = tokio::spawn(async move {
            loop {
                let mut inbound = match listener.accept().await {
                    Ok((inbound, _)) => inbound,
                    Err(error) => {
                        // A connection reset before it was accepted, or no file descriptor
                        // left for a moment: the proxy must go on accepting, or every later
                        // client would hang in the listen backlog.
                        eprintln!("test proxy: accept failed ({error}), accepting again");
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Checked and booked under the lock `cut` drains: a connection is either
                // refused or aborted by the cut, never left forwarding through it.
                let mut connections = live.lock().unwrap_or_else(|p| p.into_inner());
                if *cut_rx.borrow() {
                    drop(inbound); // Refused in effect: the client sees the connection close.
                    continue;
                }
                let forward = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.retain(|c| !c.is_finished());
                connections.push(forward.abort_handle());
            }
        });
        Ok(TcpProxy {
            addr,
            cut,
            connections,
            acceptor,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes every forwarded connection and turns new ones away until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.cut.send_replace(true);
        for connection in self
            .connections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            connection.abort();
        }
    }

    /// Forwards again.
    pub fn restore(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        self.cut();
    }
}
