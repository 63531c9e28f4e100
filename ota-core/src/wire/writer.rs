//! A bounded text writer over a caller buffer, shared by the topic and status builders.
//!
//! The device formats a handful of small ASCII messages (topics §1.1, job status updates §1.4,
//! the get-next request §1.3). `core::fmt` would work but pulls its formatting machinery into
//! the firmware image; these builders only need strings, decimal and `0x%08x` hex, so this
//! writer does exactly that and reports overflow as a value instead of truncating.

/// The output did not fit in the caller's buffer. The buffer content is unspecified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

/// Appends ASCII/UTF-8 text to a borrowed byte buffer, never past its end.
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    /// Starts writing at the beginning of `buf`.
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Number of bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends raw bytes, or fails without writing anything when they do not fit.
    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<&mut Self, Overflow> {
        let end = self.len.checked_add(b.len()).ok_or(Overflow)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(Overflow)?;
        dst.copy_from_slice(b);
        self.len = end;
        Ok(self)
    }

    /// Appends a string.
    pub(crate) fn str(&mut self, s: &str) -> Result<&mut Self, Overflow> {
        self.bytes(s.as_bytes())
    }

    /// Appends `v` in decimal without leading zeros (`%u`).
    pub(crate) fn dec(&mut self, v: u32) -> Result<&mut Self, Overflow> {
        let mut tmp = [0u8; 10];
        let mut i = tmp.len();
        let mut v = v;
        loop {
            i -= 1;
            if let Some(d) = tmp.get_mut(i) {
                *d = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.bytes(tmp.get(i..).unwrap_or(&[]))
    }

    /// Appends `v` as `0x` and eight lowercase hex digits (`0x%08x`).
    pub(crate) fn hex08(&mut self, v: u32) -> Result<&mut Self, Overflow> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut tmp = *b"0x00000000";
        for (n, slot) in tmp.iter_mut().skip(2).enumerate() {
            let shift = 28 - 4 * n as u32;
            let nib = ((v >> shift) & 0xf) as usize;
            *slot = DIGITS.get(nib).copied().unwrap_or(b'0');
        }
        self.bytes(&tmp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_decimal_and_hex() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        w.dec(0).unwrap().str(" ").unwrap().dec(u32::MAX).unwrap();
        w.str(" ")
            .unwrap()
            .hex08(0x0102_0003)
            .unwrap()
            .str(" ")
            .unwrap();
        w.hex08(u32::MAX).unwrap();
        let n = w.len();
        assert_eq!(&buf[..n], b"0 4294967295 0x01020003 0xffffffff");
    }

    #[test]
    fn overflow_is_an_error_and_writes_nothing() {
        let mut buf = [0u8; 4];
        let mut w = Writer::new(&mut buf);
        w.str("abc").unwrap();
        assert_eq!(w.str("de").err(), Some(Overflow));
        assert_eq!(w.len(), 3);
        assert_eq!(w.hex08(1).err(), Some(Overflow));
        assert_eq!(w.dec(12).err(), Some(Overflow));
        w.dec(7).unwrap();
        assert_eq!(w.len(), 4);
    }
}
