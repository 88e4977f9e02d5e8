//! Reading ring-buffer records.

use netprobe_common::event::EventHeader;

/// A wire struct from the front of `bytes`, if they are long enough to hold one.
pub fn read<T: Copy>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: length checked; T is a repr(C) integer-only wire type, read unaligned.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

pub fn header(bytes: &[u8]) -> Option<EventHeader> {
    read(bytes)
}

#[cfg(test)]
pub mod tests {
    pub fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a repr(C) integer-only struct.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }
}
