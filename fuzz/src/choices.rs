//! A byte-driven choice reader, after str0m's fuzzing `Rng`: the fuzzer's input bytes are read
//! front to back as a stream of decisions (`bool`, a number below `n`, a slice). libFuzzer
//! mutates bytes, so every mutation changes some decision, and a crash input replays exactly.
//!
//! Two flavours: [`Choices`] returns `None` once the input is used up (ends the decoding of a
//! scenario), and [`Seeded`] returns zeros after its end (fills in the details of a plausible
//! response body, where running out of bytes should still give a whole body).

/// Reads decisions from fuzz bytes; `None` once they run out.
#[derive(Debug, Clone)]
pub struct Choices<'a> {
    bytes: &'a [u8],
}

impl<'a> Choices<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Choices { bytes }
    }

    /// True once every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        let (&first, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(first)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.u8()?,
            self.u8()?,
            self.u8()?,
            self.u8()?,
        ]))
    }

    /// The next eight bytes, little-endian.
    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from(self.u32()?) | u64::from(self.u32()?) << 32)
    }

    /// One bit of decision (the low bit of a byte).
    pub fn bool(&mut self) -> Option<bool> {
        Some(self.u8()? & 1 == 1)
    }

    /// A number in `0..n` (`n` ≥ 1), from one byte when `n` fits in one, else from two or four.
    pub fn below(&mut self, n: usize) -> Option<usize> {
        let n = n.max(1);
        let raw = if n <= 256 {
            usize::from(self.u8()?)
        } else if n <= 65_536 {
            usize::from(self.u16()?)
        } else {
            self.u32()? as usize
        };
        Some(raw % n)
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        items.get(self.below(items.len())?)
    }

    /// A slice of at most `max` bytes: a one- or two-byte length, then that many bytes (fewer if
    /// the input ends first).
    pub fn slice(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = self.below(max + 1)?.min(self.bytes.len());
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.bytes)
    }
}

/// Reads decisions from a seed; zeros after its end, so generation never stops half-way.
#[derive(Debug, Clone)]
pub struct Seeded<'a> {
    choices: Choices<'a>,
}

impl<'a> Seeded<'a> {
    /// A reader over `seed`.
    pub fn new(seed: &'a [u8]) -> Self {
        Seeded {
            choices: Choices::new(seed),
        }
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        self.choices.u8().unwrap_or(0)
    }

    /// The next two bytes, or 0.
    pub fn u16(&mut self) -> u16 {
        self.choices.u16().unwrap_or(0)
    }

    /// A number in `0..n`, or 0.
    pub fn below(&mut self, n: usize) -> usize {
        self.choices.below(n).unwrap_or(0)
    }

    /// One bit, or false.
    pub fn bool(&mut self) -> bool {
        self.choices.bool().unwrap_or(false)
    }

    /// One of `items` (which must not be empty); the first once the seed runs out.
    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_end_with_the_input() {
        let mut c = Choices::new(&[1, 2, 3]);
        assert_eq!(c.u16(), Some(0x0201));
        assert_eq!(c.u16(), None);
        assert!(c.is_empty());
    }

    #[test]
    fn slices_are_length_prefixed_and_truncated() {
        let mut c = Choices::new(&[5, b'a', b'b']);
        assert_eq!(c.slice(10), Some(&b"ab"[..]));
        assert_eq!(c.slice(10), None);
    }

    #[test]
    fn seeded_gives_zeros_after_the_end() {
        let mut s = Seeded::new(&[7]);
        assert_eq!(s.below(5), 2);
        assert_eq!(s.below(5), 0);
        assert_eq!(*s.pick(&["x", "y"]), "x");
    }
}
