//! [`Shutdown`]: SIGINT and SIGTERM, listened to from the start of a command.

use std::time::Duration;

/// SIGINT and SIGTERM, listened to from the moment it is made: a signal that comes while a
/// command is still starting (registering, connecting) ends it cleanly later instead of
/// killing the process before its handler exists.
pub(crate) struct Shutdown {
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Shutdown {
    /// Installs the handlers now.
    pub(crate) fn listen() -> Shutdown {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Shutdown {
                interrupt: signal(SignalKind::interrupt()).ok(),
                terminate: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        Shutdown {}
    }

    /// Waits for a signal, or for `limit` to pass. Then the command shuts down cleanly
    /// (unregisters, drains); a SIGINT or SIGTERM meanwhile (the second, after a signal)
    /// exits the process at once, with status 130.
    pub(crate) async fn wait(mut self, limit: Option<Duration>) {
        let limit = async {
            match limit {
                Some(limit) => tokio::time::sleep(limit).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = self.signalled() => {}
            () = limit => {}
        }
        tokio::spawn(async move {
            self.signalled().await;
            eprintln!("srpc: second signal: exiting now, without finishing the shutdown");
            std::process::exit(130);
        });
    }

    #[cfg(unix)]
    async fn signalled(&mut self) {
        async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(self.interrupt.as_mut()) => {}
            () = recv(self.terminate.as_mut()) => {}
        }
    }

    #[cfg(not(unix))]
    async fn signalled(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
