//! A connection's life: the lane (thread) that holds it from accept to close, and how it
//! closes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Connection threads (`http_threads`, default one per core), each with a single-threaded
/// tokio runtime: a connection lives on one of them from accept to close, so its socket's
/// readiness, its request and its answer stay on one thread. On tokio's work-stealing
/// scheduler they crossed threads: single-key reads under `wrk -t2 -c16` took 20.8–25.8 µs
/// of server CPU each against 20.1–20.5 here, 43.4k–52.9k against 54.6k–55.7k requests/s
/// (the measurement journal, *Connections on lanes*). Work that takes long leaves the lane
/// anyway (the query pool, blocking tasks), so one slow request does not hold up its lane's
/// connections.
pub(super) struct Lanes {
    handles: Vec<tokio::runtime::Handle>,
    /// Dropped to stop the threads; their runtimes then drop what is left on them.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
    next: usize,
}

impl Lanes {
    pub(super) fn start(n: usize) -> std::io::Result<Lanes> {
        let (mut handles, mut stop) = (Vec::new(), Vec::new());
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stop.push(tx);
            std::thread::Builder::new().name(format!("jichu-http-{i}")).spawn(move || {
                let _ = runtime.block_on(rx);
            })?;
        }
        Ok(Lanes { handles, _stop: stop, next: 0 })
    }

    /// The lanes in turn: connections are long-lived and alike, so turns spread them evenly.
    pub(super) fn next(&mut self) -> &tokio::runtime::Handle {
        self.next = (self.next + 1) % self.handles.len();
        &self.handles[self.next]
    }
}

/// How long, and for how many bytes, a closing connection keeps reading what its client still
/// sends, and how long it waits for the client's next bytes: nginx's `lingering_time` and
/// `lingering_timeout` (30 s, 5 s). A deadline of 2 s in all once lost an answer in the test
/// suite, the client's sending task starved that long by the tests beside it on 2 cores.
const LINGER_TIME: Duration = Duration::from_secs(30);
const LINGER_IDLE: Duration = Duration::from_secs(5);
const LINGER_BYTES: u64 = 16 << 20;

/// A connection's socket that closes the way nginx's `lingering_close` does. When hyper ends
/// a connection whose request body was not read (a 413 answered from the head, a body limit
/// hit half-way), closing the socket with the client's bytes unread makes the kernel send a
/// reset, and the reset throws away the answer waiting in the client's buffers: the client
/// sees a broken pipe instead of the problem+json. So the shutdown sends the answer's end
/// (FIN), then reads and drops what comes until the client closes, for at most
/// [`LINGER_TIME`] and [`LINGER_BYTES`], and [`LINGER_IDLE`] between reads. A client that
/// closes first costs one read.
pub(super) struct Lingering {
    stream: TcpStream,
    drain: Option<Drain>,
}

struct Drain {
    deadline: Pin<Box<tokio::time::Sleep>>,
    /// Reset by every read.
    idle: Pin<Box<tokio::time::Sleep>>,
    left: u64,
}

impl Lingering {
    pub(super) fn new(stream: TcpStream) -> Lingering {
        Lingering { stream, drain: None }
    }
}

impl AsyncRead for Lingering {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.drain.is_none() {
            ready!(Pin::new(&mut this.stream).poll_shutdown(cx))?;
        }
        let drain = this.drain.get_or_insert_with(|| Drain {
            deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
            idle: Box::pin(tokio::time::sleep(LINGER_IDLE)),
            left: LINGER_BYTES,
        });
        let mut scratch = [0u8; 16 * 1024];
        loop {
            if drain.left == 0 || drain.deadline.as_mut().poll(cx).is_ready() || drain.idle.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut this.stream).poll_read(cx, &mut buf)) {
                // The client closed (or reset): nothing of the answer is left to lose.
                Err(_) => return Poll::Ready(Ok(())),
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => {
                    drain.left = drain.left.saturating_sub(buf.filled().len() as u64);
                    drain.idle.as_mut().reset(tokio::time::Instant::now() + LINGER_IDLE);
                }
            }
        }
    }
}
