//! Per-thread buffers of the FastCGI client, kept between requests: the read buffers and
//! the buffer records are encoded into, so a request on a kept connection allocates neither.

pub(super) const READ_LEN: usize = 64 * 1024;

/// Size of the read buffer: one read's room beside the partial record a read may leave.
const BUFFER_LEN: usize = 2 * READ_LEN + 1024;

thread_local! {
    /// Read buffers returned by finished requests of this thread, for the next ones (at
    /// most 2).
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
    /// The buffer requests of this thread encode their records into, kept between them.
    static SPARE_OUT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

pub(super) fn take_buffer() -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_else(|| vec![0; BUFFER_LEN])
}

/// A buffer that goes back to this thread's spares when dropped.
pub(super) struct Buffer(pub(super) Vec<u8>);

impl Drop for Buffer {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        SPARE.with(|s| {
            let mut s = s.borrow_mut();
            if s.len() < 2 {
                s.push(v);
            }
        });
    }
}

/// Largest encoding buffer kept for the thread's next request (a head with large params
/// or a body chunk fits; a larger one is freed).
const OUT_KEPT: usize = 2 * READ_LEN;

/// The records going out (empty at first); back to the thread's spare when dropped, so a
/// request costs no allocation for them.
pub(super) struct Out(pub(super) Vec<u8>);

impl Out {
    pub(super) fn take() -> Out {
        Out(SPARE_OUT.with(|s| std::mem::take(&mut *s.borrow_mut())))
    }
}

impl Drop for Out {
    fn drop(&mut self) {
        if self.0.capacity() <= OUT_KEPT {
            let mut v = std::mem::take(&mut self.0);
            v.clear();
            SPARE_OUT.with(|s| *s.borrow_mut() = v);
        }
    }
}
