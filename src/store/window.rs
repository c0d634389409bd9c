//! A sliding window over a byte stream, for the record reader: look ahead a bounded
//! number of bytes, consume from the front, know the file offset of the front.
//!
//! The buffer grows only with bytes that actually arrive (a garbage length never
//! allocates what it claims), and consumed bytes are dropped, so memory stays bounded
//! by the largest look-ahead asked for (at most one maximal record), never by the file.

use std::io::{self, Read};

/// Bytes read from the stream per call.
const CHUNK: usize = 64 * 1024;

pub(crate) struct Window<R> {
    inner: R,
    /// Live bytes are `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// File offset of `buf[start]`.
    pos: u64,
    eof: bool,
}

impl<R: Read> Window<R> {
    /// A window whose front is at file offset `pos`.
    pub(crate) fn new(inner: R, pos: u64) -> Self {
        Window {
            inner,
            buf: Vec::new(),
            start: 0,
            pos,
            eof: false,
        }
    }

    /// File offset of the first live byte.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// The live bytes (what `fill` made available, not yet consumed).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn live(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Makes at least `n` bytes available unless the stream ends first; returns how
    /// many are available (`< n` only at the end of the stream).
    pub(crate) fn fill(&mut self, n: usize) -> io::Result<usize> {
        while self.live() < n && !self.eof {
            self.compact(n);
            let got = (&mut self.inner)
                .take(CHUNK as u64)
                .read_to_end(&mut self.buf)?;
            if got < CHUNK {
                self.eof = true;
            }
        }
        Ok(self.live())
    }

    /// Drops the consumed prefix once it is at least as large as what is live (so
    /// moving bytes costs O(1) per byte overall), and gives back memory after a large
    /// record once only small look-aheads are needed.
    fn compact(&mut self, need: usize) {
        if self.start > 0 && self.start >= self.live() {
            self.buf.drain(..self.start);
            self.start = 0;
            let keep = need.max(CHUNK) * 2;
            if self.buf.capacity() > keep.max(1 << 20) && self.buf.len() <= keep {
                self.buf.shrink_to(keep);
            }
        }
    }

    /// Consumes `n` live bytes (`n <= bytes().len()`).
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.live());
        let n = n.min(self.live());
        self.start += n;
        self.pos += n as u64;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    /// Consumes everything up to the end of the stream; returns how many bytes that
    /// was and whether they were all zero.
    pub(crate) fn consume_to_end(&mut self) -> io::Result<(u64, bool)> {
        let mut count = 0u64;
        let mut zero = true;
        loop {
            let n = self.fill(1)?;
            if n == 0 {
                return Ok((count, zero));
            }
            zero &= self.bytes().iter().all(|b| *b == 0);
            count += n as u64;
            self.consume(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most 3 bytes per call.
    struct Dribble<'a>(&'a [u8]);

    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = out.len().min(3).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn fills_across_short_reads_and_tracks_the_offset() {
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let mut w = Window::new(Dribble(&data), 10);
        assert!(w.fill(5).unwrap() >= 5);
        w.consume(5);
        assert_eq!(w.pos(), 15);
        assert!(w.fill(150_000).unwrap() >= 150_000);
        assert_eq!(w.bytes()[0], 5);
        w.consume(150_000);
        assert_eq!(w.bytes()[0], (150_005u32 % 256) as u8);
        assert_eq!(w.fill(1_000_000).unwrap(), 200_000 - 150_005);
        let (n, zero) = w.consume_to_end().unwrap();
        assert_eq!(n, 200_000 - 150_005);
        assert!(!zero);
        assert_eq!(w.pos(), 200_010);
        assert_eq!(w.fill(1).unwrap(), 0);
    }

    #[test]
    fn a_large_request_on_a_short_stream_allocates_only_what_arrives() {
        let data = [0u8; 100];
        let mut w = Window::new(&data[..], 0);
        assert_eq!(w.fill(60 << 20).unwrap(), 100);
        assert!(w.buf.capacity() < 1 << 20);
        assert_eq!(w.consume_to_end().unwrap(), (100, true));
    }
}
