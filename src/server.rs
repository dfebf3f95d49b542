//! Serving the router on a TCP listener with the limits a public service
//! needs, which `axum::serve` does not offer: a client must send its request
//! headers within `header_read_timeout` (also when a kept-alive connection
//! sits idle), request headers are bounded in size, and at most
//! `max_connections` connections are open at once (past it, new ones are
//! closed at once), and a peer that stops answering is dropped within
//! about a minute. Stops accepting on shutdown and lets open requests
//! finish.

use std::{future::Future, sync::Arc, time::Duration};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};

/// Connection limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Time a client has to send a request's headers; a connection idle
    /// that long between requests is closed too.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// Largest request head (request line and headers), in bytes, that
    /// the API reads; a larger one gets a problem+json `431` from the API.
    /// The HTTP layer itself stops reading at four times this (at least
    /// 64 KiB) and answers a bare `431`.
    pub max_header_bytes: usize,
    /// Longest wait for open requests once shutdown was asked for: the
    /// request time limit, so that a long poll in progress is answered.
    pub drain_timeout: Duration,
}

/// A peer that stopped answering (gone without closing, a cut network) is
/// dropped once data sent to it stayed unacknowledged this long, and an
/// idle connection is probed after [`PROBE_IDLE_AFTER`]: an event stream or
/// a long poll of a vanished client frees its place within about a minute,
/// not the kernel's default quarter of an hour.
const DEAD_PEER_AFTER: Duration = Duration::from_secs(60);

/// Idle time before the first keepalive probe (then one every 10 s, 3 in
/// all).
const PROBE_IDLE_AFTER: Duration = Duration::from_secs(30);

/// Sets the dead-peer detection on an accepted connection.
fn drop_dead_peers(stream: &tokio::net::TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new().with_time(PROBE_IDLE_AFTER);
    #[cfg(target_os = "linux")]
    let keepalive = keepalive
        .with_interval(Duration::from_secs(10))
        .with_retries(3);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(target_os = "linux")]
    socket.set_tcp_user_timeout(Some(DEAD_PEER_AFTER))?;
    Ok(())
}

/// Refused connections are logged at most once per this interval (with a
/// count), so that a client hammering at the cap cannot flood the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Serves `router` until `stop` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let mut refused: u64 = 0;
    let mut refusals_logged = tokio::time::Instant::now() - REFUSAL_LOG_INTERVAL;
    let service = TowerToHyperService::new(router);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors and the like: wait and go on.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            refused += 1;
            if refusals_logged.elapsed() >= REFUSAL_LOG_INTERVAL {
                tracing::warn!(%peer, refused, max = limits.max_connections, "too many open connections; closing new ones");
                refusals_logged = tokio::time::Instant::now();
                refused = 0;
            }
            continue;
        };
        // Reap ended connections so the set stays small.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        if let Err(error) = drop_dead_peers(&stream) {
            tracing::debug!(%peer, %error, "could not set the dead-peer detection");
        }
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.saturating_mul(4).max(64 * 1024))
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service.clone());
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish in time; closing them");
        connections.abort_all();
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_accepted_connection_is_set_to_drop_a_peer_that_stops_answering() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");

        drop_dead_peers(&accepted).expect("set");

        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().expect("keepalive"));
        assert_eq!(socket.tcp_keepalive_time().expect("time"), PROBE_IDLE_AFTER);
        assert_eq!(socket.tcp_keepalive_retries().expect("retries"), 3);
        assert_eq!(
            socket.tcp_user_timeout().expect("user timeout"),
            Some(DEAD_PEER_AFTER)
        );
    }
}
