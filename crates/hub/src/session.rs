//! A session is one client's membership in one live document: frames in
//! through [`Session::receive`], frames out through [`Session::next`]. It is
//! transport-agnostic; the WebSocket handler only pumps bytes.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

use crate::conn::{CloseCode, CloseFrame, ConnId};
use crate::doc::{DocCommand, DocHandle};
use crate::queues::{InFrame, OutboxReceiver};

/// What the transport should do next.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Bytes),
    Close(CloseFrame),
}

/// Tells the document the session left when the last half is dropped.
struct LeaveGuard {
    conn: ConnId,
    handle: DocHandle,
    /// Frames handed to the document. Leave travels on the control channel,
    /// which overtakes queued frames; the count lets the document apply every
    /// frame the client sent before it removes the session.
    frames_sent: AtomicU64,
}

impl Drop for LeaveGuard {
    fn drop(&mut self) {
        self.handle.send(DocCommand::Leave {
            conn: self.conn,
            frames_sent: self.frames_sent.load(Ordering::Acquire),
        });
    }
}

/// One client's membership in a live document. Dropping it leaves the
/// document (its presence is removed and broadcast).
pub struct Session {
    pub inbound: SessionInbound,
    pub outbound: SessionOutbound,
}

/// The half that takes the client's frames.
pub struct SessionInbound {
    guard: std::sync::Arc<LeaveGuard>,
}

/// The half that yields frames for the client.
pub struct SessionOutbound {
    out: OutboxReceiver,
    close: oneshot::Receiver<CloseFrame>,
    closed: bool,
    _guard: std::sync::Arc<LeaveGuard>,
}

impl Session {
    pub(crate) fn new(
        conn: ConnId,
        handle: DocHandle,
        out: OutboxReceiver,
        close: oneshot::Receiver<CloseFrame>,
    ) -> Self {
        let guard = std::sync::Arc::new(LeaveGuard {
            conn,
            handle,
            frames_sent: AtomicU64::new(0),
        });
        Session {
            inbound: SessionInbound {
                guard: guard.clone(),
            },
            outbound: SessionOutbound {
                out,
                close,
                closed: false,
                _guard: guard,
            },
        }
    }

    pub async fn receive(&self, frame: Bytes) -> bool {
        self.inbound.receive(frame).await
    }

    pub async fn next(&mut self) -> Outgoing {
        self.outbound.next().await
    }

    pub fn try_next_frame(&mut self) -> Option<Bytes> {
        self.outbound.try_next_frame()
    }
}

/// What [`SessionInbound::offer`] did with a frame.
#[derive(Debug)]
pub enum Offered {
    /// The document has it.
    Taken,
    /// The document's queue is full: hand the frame over once
    /// [`SessionInbound::reserve`] gives room.
    Busy(Bytes),
    /// The document is gone.
    Gone,
}

/// Room for one frame in the document's queue (see [`SessionInbound::reserve`]).
pub struct InboundPermit<'a> {
    permit: mpsc::Permit<'a, InFrame>,
    bytes: OwnedSemaphorePermit,
    guard: &'a LeaveGuard,
}

impl InboundPermit<'_> {
    pub fn send(self, frame: Bytes) {
        self.permit.send((self.guard.conn, frame, self.bytes));
        self.guard.frames_sent.fetch_add(1, Ordering::Release);
    }
}

impl SessionInbound {
    /// Hands one received frame to the document. Waits when the document is
    /// busy, which pushes back on the client through TCP flow control.
    /// Returns `false` when the document is gone.
    pub async fn receive(&self, frame: Bytes) -> bool {
        match self.offer(frame) {
            Offered::Taken => true,
            Offered::Gone => false,
            Offered::Busy(frame) => match self.reserve(frame.len()).await {
                Some(permit) => {
                    permit.send(frame);
                    true
                }
                None => false,
            },
        }
    }

    /// Hands one frame to the document if its queue has room, without
    /// waiting.
    pub fn offer(&self, frame: Bytes) -> Offered {
        let inbox = &self.guard.handle.inbox;
        let Some(bytes) = inbox.try_take_bytes(frame.len()) else {
            return Offered::Busy(frame);
        };
        match inbox.frames.try_send((self.guard.conn, frame, bytes)) {
            Ok(()) => {
                self.guard.frames_sent.fetch_add(1, Ordering::Release);
                Offered::Taken
            }
            Err(mpsc::error::TrySendError::Full((_, frame, _))) => Offered::Busy(frame),
            Err(mpsc::error::TrySendError::Closed(_)) => Offered::Gone,
        }
    }

    /// Waits for room for a frame of `len` bytes in the document's queue
    /// (cancel-safe: a transport can wait for it and for outgoing frames at
    /// once). `None` when the document is gone.
    pub async fn reserve(&self, len: usize) -> Option<InboundPermit<'_>> {
        let inbox = &self.guard.handle.inbox;
        let bytes = inbox.take_bytes(len).await?;
        let permit = inbox.frames.reserve().await.ok()?;
        Some(InboundPermit {
            permit,
            bytes,
            guard: &self.guard,
        })
    }
}

impl SessionOutbound {
    /// The next frame to send, or the close to perform. A close is final.
    pub async fn next(&mut self) -> Outgoing {
        if self.closed {
            return Outgoing::Close(CloseFrame::new(CloseCode::GoingAway, "session closed"));
        }
        tokio::select! {
            biased;
            close = &mut self.close => {
                self.closed = true;
                Outgoing::Close(close.unwrap_or_else(|_| CloseFrame::new(CloseCode::GoingAway, "document closed")))
            }
            frame = self.out.recv() => match frame {
                Some(f) => Outgoing::Frame(f),
                None => {
                    self.closed = true;
                    Outgoing::Close(CloseFrame::new(CloseCode::GoingAway, "document closed"))
                }
            }
        }
    }

    /// A frame already queued, without waiting (for batching socket writes).
    pub fn try_next_frame(&mut self) -> Option<Bytes> {
        self.out.try_recv()
    }
}
