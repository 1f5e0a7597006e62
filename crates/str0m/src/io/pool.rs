//! lanrelay patch: encrypted datagrams are written into buffers that come back.
//!
//! Every packet a relay sends is encrypted into a fresh `Vec` (`SrtpContext::protect_rtp`),
//! handed out in a `Transmit`, and freed once the caller has sent it: a `calloc` and a
//! `free` of about 1.2 KB per packet and receiver, which glibc serves from its slower
//! bins (the per-thread cache stops at 1 KB). A caller that gives sent datagrams back
//! with [`recycle`] has them reused by the next packets encrypted on the same thread;
//! a caller that does not loses nothing but the reuse.

use std::cell::RefCell;

use super::DatagramSend;

/// The capacity a pooled buffer has: a whole datagram of any size str0m sends, so a
/// reused buffer never grows.
const BUF_CAPACITY: usize = 1500;

/// Buffers kept per thread. A relay encrypts a fan-out step and sends it before the
/// next, so a few dozen circulate; the rest are freed.
const MAX_POOLED: usize = 256;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of `len` bytes, reused from this thread's pool when it has one. Its
/// contents are unspecified (zeros, or a datagram sent before): the caller writes all
/// of it. A reused buffer keeps the bytes it had, so only the part beyond its last
/// length is filled, instead of zeroing a whole datagram that is then overwritten.
pub(crate) fn datagram_buf(len: usize) -> Vec<u8> {
    let reused = if len <= BUF_CAPACITY {
        POOL.with_borrow_mut(|pool| pool.pop())
    } else {
        None
    };
    let mut buf = reused.unwrap_or_else(|| Vec::with_capacity(len.max(BUF_CAPACITY)));
    if buf.len() > len {
        buf.truncate(len);
    } else {
        buf.resize(len, 0);
    }
    buf
}

/// Gives a sent datagram's buffer back for the next packets encrypted on this thread.
pub fn recycle(datagram: DatagramSend) {
    let buf: Vec<u8> = datagram.into();
    if buf.capacity() < BUF_CAPACITY {
        return;
    }
    POOL.with_borrow_mut(|pool| {
        if pool.len() < MAX_POOLED {
            pool.push(buf);
        }
    });
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_reused_at_the_asked_length() {
        let mut a = datagram_buf(1200);
        a.fill(7);
        let ptr = a.as_ptr();
        recycle(a.into());
        let b = datagram_buf(100);
        assert_eq!(b.as_ptr(), ptr, "the same allocation");
        assert_eq!(b.len(), 100);
        recycle(b.into());
        let c = datagram_buf(1300);
        assert_eq!(c.as_ptr(), ptr, "the same allocation again");
        assert_eq!(c.len(), 1300);
    }

    #[test]
    fn the_pool_is_bounded_and_skips_small_buffers() {
        for _ in 0..MAX_POOLED + 10 {
            recycle(vec![0; BUF_CAPACITY].into());
        }
        recycle(vec![0; 10].into());
        assert_eq!(POOL.with_borrow(|p| p.len()), MAX_POOLED);
        assert!(POOL.with_borrow(|p| p.iter().all(|b| b.capacity() >= BUF_CAPACITY)));
    }
}
