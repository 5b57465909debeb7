//! The two queues between a document and one session's transport: the
//! session's outgoing frames (bounded in frames and bytes, with one
//! full-state reply beside them) and the document's inbound frames (bounded
//! in frames and bytes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::conn::ConnId;

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

impl From<flume::TrySendError<OutFrame>> for Refused {
    fn from(e: flume::TrySendError<OutFrame>) -> Self {
        match e {
            flume::TrySendError::Full(_) => Refused::Full,
            flume::TrySendError::Disconnected(_) => Refused::Gone,
        }
    }
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
            Refused::from(e)
        })
    }

    /// Queues a full-state reply; the caller checks [`Self::full_state_queued`]
    /// first.
    pub(crate) fn send_full_state(&self, frame: Bytes) -> Result<(), Refused> {
        self.queued.full_state.store(true, Ordering::Release);
        self.tx.try_send(OutFrame::FullState(frame)).map_err(|e| {
            self.queued.full_state.store(false, Ordering::Release);
            Refused::from(e)
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

    pub(crate) async fn recv(&self) -> Option<Bytes> {
        let frame = self.rx.recv_async().await.ok()?;
        Some(self.taken(frame))
    }

    pub(crate) fn try_recv(&self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        Some(self.taken(frame))
    }
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

    /// Room in the byte budget for a frame of `len` bytes, if there is some
    /// now.
    pub(crate) fn try_take_bytes(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        self.bytes
            .clone()
            .try_acquire_many_owned(self.share(len))
            .ok()
    }

    /// Waits for room in the byte budget for a frame of `len` bytes
    /// (cancel-safe).
    pub(crate) async fn take_bytes(&self, len: usize) -> Option<OwnedSemaphorePermit> {
        self.bytes
            .clone()
            .acquire_many_owned(self.share(len))
            .await
            .ok()
    }
}
