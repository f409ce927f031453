//! Bytes both ways between one HTTP/2 CONNECT stream and one TCP connection.
//!
//! Agent to destination: each DATA frame is written to the socket, and only
//! then is its flow-control capacity released, so a slow destination slows
//! the agent down instead of filling the gateway's memory. Destination to
//! agent: read what the socket has, wait for send capacity, send. Each side's
//! end (END_STREAM, EOF) half-closes the other; the relay ends when both
//! have, when either side resets, or when the connection is cancelled.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::config::READ_CHUNK;

/// How a relay ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// Both sides finished, or one of them reset the connection: the peers
    /// closed it.
    Closed,
    /// [`CancellationToken`] fired: policy change or shutdown.
    Cancelled,
    /// The tunnel failed (protocol error, lost connection) or the socket did.
    Error(RelayError),
}

#[derive(Debug)]
pub(crate) enum RelayError {
    Agent(h2::Error),
    /// The agent's side of the stream went away without a reset.
    AgentGone,
    Destination(std::io::Error),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Agent(e) => write!(f, "agent side: {e}"),
            RelayError::AgentGone => f.write_str("agent side: stream closed"),
            RelayError::Destination(e) => write!(f, "destination side: {e}"),
        }
    }
}

impl RelayError {
    /// A reset by either peer is how TCP applications often close: it ends
    /// the connection normally, as far as the record is concerned.
    fn is_peer_close(&self) -> bool {
        match self {
            RelayError::Agent(e) => e.is_reset() && e.is_remote(),
            RelayError::AgentGone => false,
            RelayError::Destination(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            ),
        }
    }
}

/// Bytes carried, counted as they are handed on. Shared with the journal,
/// which records how far a connection got in case the gateway dies under it.
#[derive(Debug, Default)]
pub(crate) struct Transferred {
    /// Agent to destination.
    up: AtomicU64,
    /// Destination to agent.
    down: AtomicU64,
}

impl Transferred {
    /// (up, down) so far.
    pub(crate) fn get(&self) -> (u64, u64) {
        (self.up.load(Ordering::Relaxed), self.down.load(Ordering::Relaxed))
    }

    pub(crate) fn add_up(&self, n: u64) {
        self.up.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn add_down(&self, n: u64) {
        self.down.fetch_add(n, Ordering::Relaxed);
    }
}

/// Relays until both directions end, either side fails, or `cancel` fires.
/// On anything but a clean end the stream is reset (`CONNECT_ERROR` when the
/// destination failed, `CANCEL` otherwise) and the socket dropped.
pub(crate) async fn relay(
    recv: RecvStream,
    send: &mut SendStream<Bytes>,
    tcp: TcpStream,
    bytes: &Transferred,
    cancel: &CancellationToken,
) -> RelayEnd {
    let (mut read, mut write) = tcp.into_split();
    let outcome = {
        let both = async {
            tokio::try_join!(
                copy_to_destination(recv, &mut write, bytes),
                copy_to_agent(&mut read, send, bytes)
            )
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            result = both => Some(result),
        }
    };
    match outcome {
        None => {
            send.send_reset(h2::Reason::CANCEL);
            RelayEnd::Cancelled
        }
        Some(Ok(_)) => RelayEnd::Closed,
        Some(Err(e)) => {
            send.send_reset(match e {
                RelayError::Destination(_) => h2::Reason::CONNECT_ERROR,
                _ => h2::Reason::CANCEL,
            });
            if e.is_peer_close() {
                RelayEnd::Closed
            } else {
                RelayEnd::Error(e)
            }
        }
    }
}

async fn copy_to_destination(
    mut recv: RecvStream,
    write: &mut OwnedWriteHalf,
    count: &Transferred,
) -> Result<(), RelayError> {
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.map_err(RelayError::Agent)?;
        let n = chunk.len();
        write.write_all(&chunk).await.map_err(RelayError::Destination)?;
        count.add_up(n as u64);
        recv.flow_control().release_capacity(n).map_err(RelayError::Agent)?;
    }
    // END_STREAM: half-close towards the destination. It may have closed
    // already; that is not an error.
    let _ = write.shutdown().await;
    Ok(())
}

async fn copy_to_agent(
    read: &mut OwnedReadHalf,
    send: &mut SendStream<Bytes>,
    count: &Transferred,
) -> Result<(), RelayError> {
    // Reused while data flows: once h2 has sent (and dropped) what was
    // carved from it, `reserve` takes the same allocation back instead of
    // asking the allocator for 64 KiB per read.
    let mut spare = BytesMut::new();
    loop {
        // Wait without a buffer, so an idle connection holds none.
        tokio::select! {
            ready = read.readable() => ready.map_err(RelayError::Destination)?,
            reset = poll_fn(|cx| send.poll_reset(cx)) => {
                return Err(RelayError::Agent(match reset {
                    Ok(reason) => h2::Error::from(reason),
                    Err(e) => e,
                }));
            }
        }
        spare.reserve(READ_CHUNK);
        let n = match read.try_read_buf(&mut spare) {
            Ok(0) => {
                send.send_data(Bytes::new(), true).map_err(RelayError::Agent)?;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                spare = BytesMut::new();
                continue;
            }
            Err(e) => return Err(RelayError::Destination(e)),
        };
        let mut fin = false;
        let mut failed = None;
        if n < READ_CHUNK / 2 {
            // A server that answers and closes (HTTP/1.0, `Connection:
            // close`, most request-response protocols) has usually sent its
            // FIN with the answer: look once more, so the end rides on the
            // last DATA frame instead of a frame (and a wake-up of the
            // agent) of its own.
            match read.try_read_buf(&mut spare) {
                Ok(0) => fin = true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // What was read still goes to the agent first.
                Err(e) => failed = Some(e),
            }
        }
        let mut data = spare.split().freeze();
        if fin || data.len() < READ_CHUNK / 2 {
            // The destination went quiet: hold nothing while it stays so.
            spare = BytesMut::new();
        }
        while !data.is_empty() {
            send.reserve_capacity(data.len());
            let mut capacity = send.capacity();
            while capacity == 0 {
                capacity = match poll_fn(|cx| send.poll_capacity(cx)).await {
                    Some(Ok(c)) => c,
                    Some(Err(e)) => return Err(RelayError::Agent(e)),
                    None => return Err(RelayError::AgentGone),
                };
            }
            let chunk = data.split_to(capacity.min(data.len()));
            let n = chunk.len();
            send.send_data(chunk, fin && data.is_empty())
                .map_err(RelayError::Agent)?;
            count.add_down(n as u64);
        }
        if let Some(e) = failed {
            return Err(RelayError::Destination(e));
        }
        if fin {
            return Ok(());
        }
    }
}
