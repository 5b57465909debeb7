//! A session is one client's membership in one live document: frames in
//! through [`Session::receive`], frames out through [`Session::next`]. It is
//! transport-agnostic; the WebSocket handler only pumps bytes.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::doc::{DocCommand, DocHandle};

pub(crate) type ConnId = u64;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_conn_id() -> ConnId {
    NEXT_CONN.fetch_add(1, Ordering::Relaxed)
}

/// Why the server ends a session. Every close the server initiates goes
/// through this enum, so the codes live in one place (`docs/protocol.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseCode {
    /// 1001: the server is shutting down; reconnect (to any node).
    GoingAway,
    /// 1009: a frame exceeded the size limit.
    FrameTooLarge,
    /// 1011: the server failed (e.g. storage); reconnect later.
    InternalError,
    /// 4400: a frame or update could not be decoded.
    Malformed,
    /// 4401: not signed in.
    Unauthorized,
    /// 4403: no access to this document.
    Forbidden,
    /// 4404: the document does not exist (or was deleted).
    NotFound,
    /// 4408: the client sent nothing, not even a pong, for the silence
    /// deadline (a dead peer, or one that ignores pings).
    PongTimeout,
    /// 4409: the user's rights on the document changed; reconnect to get
    /// the new ones.
    AccessChanged,
    /// 4413: the update would make the document larger than allowed.
    DocumentTooLarge,
    /// 4429: the socket did not keep up with the document; reconnect to resync.
    TooSlow,
    /// 4503: the document could not be loaded right now.
    Unavailable,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::FrameTooLarge => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Malformed => 4400,
            CloseCode::Unauthorized => 4401,
            CloseCode::Forbidden => 4403,
            CloseCode::NotFound => 4404,
            CloseCode::PongTimeout => 4408,
            CloseCode::AccessChanged => 4409,
            CloseCode::DocumentTooLarge => 4413,
            CloseCode::TooSlow => 4429,
            CloseCode::Unavailable => 4503,
        }
    }

    /// The code for a number [`code`](Self::code) returned, e.g. one that
    /// travelled to another node.
    pub fn from_code(code: u16) -> Option<CloseCode> {
        [
            CloseCode::GoingAway,
            CloseCode::FrameTooLarge,
            CloseCode::InternalError,
            CloseCode::Malformed,
            CloseCode::Unauthorized,
            CloseCode::Forbidden,
            CloseCode::NotFound,
            CloseCode::PongTimeout,
            CloseCode::AccessChanged,
            CloseCode::DocumentTooLarge,
            CloseCode::TooSlow,
            CloseCode::Unavailable,
        ]
        .into_iter()
        .find(|c| c.code() == code)
    }

    /// Stable label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            CloseCode::GoingAway => "going_away",
            CloseCode::FrameTooLarge => "frame_too_large",
            CloseCode::InternalError => "internal_error",
            CloseCode::Malformed => "malformed",
            CloseCode::Unauthorized => "unauthorized",
            CloseCode::Forbidden => "forbidden",
            CloseCode::NotFound => "not_found",
            CloseCode::PongTimeout => "pong_timeout",
            CloseCode::AccessChanged => "access_changed",
            CloseCode::DocumentTooLarge => "document_too_large",
            CloseCode::TooSlow => "too_slow",
            CloseCode::Unavailable => "unavailable",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    pub code: CloseCode,
    pub reason: Cow<'static, str>,
}

impl CloseFrame {
    pub fn new(code: CloseCode, reason: impl Into<Cow<'static, str>>) -> Self {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// What the transport should do next.
#[derive(Debug)]
pub enum Outgoing {
    Frame(Bytes),
    Close(CloseFrame),
}

/// A frame on its way to the client.
pub(crate) enum OutFrame {
    Frame(Bytes),
    /// A reply carrying the document's state (sync step 2): at most one is
    /// queued per session at a time, and it is not counted in the byte
    /// limit, which would otherwise close every client that joins a large
    /// document.
    FullState(Bytes),
}

/// What the document and the session's transport both see of the queue
/// between them.
#[derive(Default)]
struct Queued {
    /// Bytes of [`OutFrame::Frame`]s queued and not yet taken by the transport.
    bytes: AtomicUsize,
    /// An [`OutFrame::FullState`] is queued.
    full_state: AtomicBool,
}

/// Why a frame could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The session is not reading fast enough: over its frame or byte limit.
    Full,
    /// The session is gone.
    Gone,
}

/// The document's end of a session's outgoing queue, bounded in frames and
/// in bytes.
pub(crate) struct Outbox {
    tx: flume::Sender<OutFrame>,
    queued: Arc<Queued>,
    max_bytes: usize,
}

impl Outbox {
    /// A queue of at most `frames` frames and `max_bytes` bytes (besides one
    /// full-state reply), and the transport's end of it.
    pub(crate) fn new(frames: usize, max_bytes: usize) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = flume::bounded(frames);
        let queued = Arc::new(Queued::default());
        (
            Outbox {
                tx,
                queued: queued.clone(),
                max_bytes,
            },
            OutboxReceiver { rx, queued },
        )
    }

    pub(crate) fn send(&self, frame: Bytes) -> Result<(), Refused> {
        let len = frame.len();
        if self.queued.bytes.load(Ordering::Acquire) + len > self.max_bytes {
            return Err(Refused::Full);
        }
        self.queued.bytes.fetch_add(len, Ordering::AcqRel);
        self.tx.try_send(OutFrame::Frame(frame)).map_err(|e| {
            self.queued.bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                flume::TrySendError::Full(_) => Refused::Full,
                flume::TrySendError::Disconnected(_) => Refused::Gone,
            }
        })
    }

    /// Queues a full-state reply; the caller checks [`Self::full_state_queued`]
    /// first.
    pub(crate) fn send_full_state(&self, frame: Bytes) -> Result<(), Refused> {
        self.queued.full_state.store(true, Ordering::Release);
        self.tx.try_send(OutFrame::FullState(frame)).map_err(|e| {
            self.queued.full_state.store(false, Ordering::Release);
            match e {
                flume::TrySendError::Full(_) => Refused::Full,
                flume::TrySendError::Disconnected(_) => Refused::Gone,
            }
        })
    }

    /// A full-state reply is queued and not yet taken by the transport.
    pub(crate) fn full_state_queued(&self) -> bool {
        self.queued.full_state.load(Ordering::Acquire)
    }
}

/// The transport's end of an [`Outbox`].
pub(crate) struct OutboxReceiver {
    rx: flume::Receiver<OutFrame>,
    queued: Arc<Queued>,
}

impl OutboxReceiver {
    fn taken(&self, frame: OutFrame) -> Bytes {
        match frame {
            OutFrame::Frame(b) => {
                self.queued.bytes.fetch_sub(b.len(), Ordering::AcqRel);
                b
            }
            OutFrame::FullState(b) => {
                self.queued.full_state.store(false, Ordering::Release);
                b
            }
        }
    }

    async fn recv(&self) -> Option<Bytes> {
        let frame = self.rx.recv_async().await.ok()?;
        Some(self.taken(frame))
    }

    fn try_recv(&self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        Some(self.taken(frame))
    }
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

/// A frame on its way to the document, with its share of the document's
/// inbound byte budget (returned once the document has handled it).
pub(crate) type InFrame = (ConnId, Bytes, OwnedSemaphorePermit);

/// The document's inbound queue: bounded in frames and in bytes, so that
/// clients of a document stalled behind a slow store cannot make it hold
/// 256 frames of 8 MiB each.
#[derive(Clone)]
pub(crate) struct Inbox {
    pub(crate) frames: mpsc::Sender<InFrame>,
    bytes: Arc<Semaphore>,
    budget: usize,
}

impl Inbox {
    pub(crate) fn new(frames: usize, bytes: usize) -> (Inbox, mpsc::Receiver<InFrame>) {
        let (tx, rx) = mpsc::channel(frames);
        let budget = bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let inbox = Inbox {
            frames: tx,
            bytes: Arc::new(Semaphore::new(budget)),
            budget,
        };
        (inbox, rx)
    }

    /// A frame's share of the byte budget: its size, or the whole budget for
    /// one larger than that (it then waits for an empty queue, not forever).
    fn share(&self, len: usize) -> u32 {
        len.clamp(1, self.budget) as u32
    }
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
        let Ok(bytes) = inbox
            .bytes
            .clone()
            .try_acquire_many_owned(inbox.share(frame.len()))
        else {
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
        let bytes = inbox
            .bytes
            .clone()
            .acquire_many_owned(inbox.share(len))
            .await
            .ok()?;
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

#[cfg(test)]
mod tests {
    use super::CloseCode;

    #[test]
    fn close_codes_round_trip_through_their_numbers() {
        for code in [
            1001, 1009, 1011, 4400, 4401, 4403, 4404, 4408, 4409, 4413, 4429, 4503,
        ] {
            let c = CloseCode::from_code(code).unwrap_or_else(|| panic!("{code} is known"));
            assert_eq!(c.code(), code);
        }
        assert_eq!(CloseCode::from_code(1000), None);
        assert_eq!(CloseCode::from_code(4999), None);
    }
}
