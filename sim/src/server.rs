//! Serving a router on a TCP listener whose connections a handler can cut.
//! Dropped-connection faults need to close a connection before any byte of
//! the answer is written; axum does not expose the socket to handlers, so
//! each accepted stream is wrapped with a kill switch that handlers reach
//! through `ConnectInfo<ConnHandle>`. Once killed, every read and write on
//! the stream fails, hyper gives up on the connection and the client sees
//! it closed without an answer.
//!
//! It also writes the bare answers of a proxy in front of a service
//! (`FaultKind::BareStatus`), which neither service's pipeline would.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{CallCount, Op, Sim};

/// Handle on one accepted connection, available to handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnHandle {
    killed: Arc<AtomicBool>,
}

impl ConnHandle {
    /// Makes the connection fail from now on; the answer is never sent.
    pub(crate) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
    }

    fn is_killed(&self) -> bool {
        self.killed.load(Ordering::SeqCst)
    }
}

/// A TCP stream that fails once its handle is killed.
pub(crate) struct KillableStream {
    stream: TcpStream,
    handle: ConnHandle,
}

fn killed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection dropped by fault injection",
    )
}

impl AsyncRead for KillableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.handle.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.handle.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handle.is_killed() {
            return Poll::Ready(Err(killed_error()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A TCP listener handing out [`KillableStream`]s.
pub(crate) struct SimListener {
    inner: TcpListener,
}

impl SimListener {
    pub(crate) fn new(inner: TcpListener) -> Self {
        Self { inner }
    }
}

impl Listener for SimListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = KillableStream {
                        stream,
                        handle: ConnHandle::default(),
                    };
                    return (io, addr);
                }
                // Out of file descriptors and the like: wait and retry, as
                // axum's own TCP listener does.
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, SimListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.io().handle.clone()
    }
}

/// Serves `router` until `shutdown` turns true; in-flight answers finish.
pub(crate) fn spawn(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let app = router.into_make_service_with_connect_info::<ConnHandle>();
    tokio::spawn(async move {
        let stopped = async move {
            // Ends on `true` or when the sender is gone (RunningSim dropped).
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(SimListener::new(listener), app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(%error, "simulator listener failed");
        }
    })
}

/// What a reverse proxy or load balancer answers on its own, e.g. a rate
/// limit's 429: a one-line HTML page, `Cache-Control: no-cache`, and none
/// of the service's headers (no request id, no version).
pub(crate) fn bare_answer(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let reason = status.canonical_reason().unwrap_or("Error");
    let page = format!(
        "<html><body><h1>{} {reason}</h1></body></html>\n",
        status.as_u16()
    );
    let mut response = (status, Body::from(page)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Runs one call of `op`: counts it, answers it with `respond` (which says
/// whether the connection is to be cut instead), and counts the answer's
/// status, [`CallCount::NO_ANSWER`] for a cut. The cut comes only once the
/// answer is counted: the client may see the close at once, and a test that
/// then reads the counters must find the call there. A call whose client
/// left while it was delayed keeps `NO_ANSWER` (it was never answered).
pub(crate) async fn counted<F>(
    sim: &Sim,
    op: Op,
    request: Request,
    respond: impl FnOnce(Request) -> F,
) -> Response
where
    F: Future<Output = (Response, bool)>,
{
    let answering = sim.begin_call(op);
    let conn = request
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());
    let (response, cut) = respond(request).await;
    answering.answered(if cut {
        CallCount::NO_ANSWER
    } else {
        response.status().as_u16()
    });
    if cut && let Some(conn) = conn {
        conn.kill();
    }
    response
}
