//! The recording file (docs/recording.md): a magic line, a format version, then frames of
//! `[u32 length][u32 CRC-32][JSON]`, little-endian. A header frame comes first and an end
//! frame last, so a file cut short is told apart from a finished one.

use std::{
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
};

use crate::frames::{Frame, Frames};

pub const MAGIC: &[u8; 16] = b"netprobe-record\n";
/// Version 2 names pods with their namespace, uid and labels (version 1: a bare name);
/// version 3's end frame no longer counts drop samples, since none are taken. Both older
/// ones are still read.
pub const VERSION: u32 = 3;
const OLDEST: u32 = 1;
/// No frame is near this; a larger length is corruption, not a reason to allocate.
const MAX_FRAME: u32 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0}: not a netprobe recording (it does not start with netprobe's magic line)")]
    Foreign(PathBuf),
    #[error(
        "{path}: recording format version {found}; this netprobe reads versions {OLDEST} to \
         {VERSION}. Read it with the netprobe release that wrote it"
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{path}: truncated at byte {offset}: the file ends inside a frame. The recording was \
         cut short (disk full, copy interrupted, netprobe killed)"
    )]
    Truncated { path: PathBuf, offset: u64 },
    #[error("{path}: corrupt frame at byte {offset}: {what}")]
    Corrupt { path: PathBuf, offset: u64, what: String },
    #[error(
        "{0}: the recording has no end frame: netprobe stopped before finishing it (killed, \
         or the file was cut at a frame boundary)"
    )]
    NoEnd(PathBuf),
}

/// A recording being written. Once `cap` bytes are reached it refuses events and snapshots
/// (collection then stops) but still takes the closing frames, which `RESERVE` leaves room for.
pub struct Writer<W: Write = BufWriter<File>> {
    out: W,
    written: u64,
    cap: u64,
    /// Frames refused at the cap.
    pub refused: u64,
    closed_snapshot: bool,
    error: Option<io::Error>,
}

/// Room kept under the cap for the closing snapshot, pods and end frames.
const RESERVE: u64 = 256 << 10;

impl Writer {
    pub fn create(path: &Path, cap: u64) -> io::Result<Self> {
        Writer::new(BufWriter::new(File::create(path)?), cap)
    }

    /// Flushes and syncs; the first write error, if any, is returned here.
    pub fn close(mut self) -> io::Result<u64> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()?;
        self.out.get_ref().sync_data()?;
        Ok(self.written)
    }
}

impl Writer<Vec<u8>> {
    /// The recording's bytes, or the first error.
    pub fn into_bytes(mut self) -> io::Result<Vec<u8>> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }
}

impl<W: Write> Writer<W> {
    /// A recording into `out` (a file, or memory for the agent's /api/v1/record).
    pub fn new(mut out: W, cap: u64) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        let written = MAGIC.len() as u64 + 4;
        Ok(Self {
            out,
            written,
            cap: cap.saturating_sub(RESERVE),
            refused: 0,
            closed_snapshot: false,
            error: None,
        })
    }

    pub fn capped(&self) -> bool {
        self.refused > 0
    }

    fn put(&mut self, json: &[u8]) -> io::Result<()> {
        let len = u32::try_from(json.len()).map_err(io::Error::other)?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(&crc32fast::hash(json).to_le_bytes())?;
        self.out.write_all(json)?;
        self.written += 8 + json.len() as u64;
        Ok(())
    }
}

impl<W: Write> Frames for Writer<W> {
    fn frame(&mut self, frame: &Frame) {
        if self.error.is_some() {
            return;
        }
        let json = match serde_json::to_vec(frame) {
            Ok(j) => j,
            Err(e) => {
                self.error = Some(e.into());
                return;
            }
        };
        // At the cap, one more snapshot: the closing one, which makes the counts end there.
        let closing =
            matches!(frame, Frame::End(_) | Frame::Pods(_) | Frame::Rates(_) | Frame::Selected(_))
                || (self.capped() && !self.closed_snapshot && matches!(frame, Frame::Snapshot(_)));
        self.closed_snapshot |= closing && matches!(frame, Frame::Snapshot(_));
        if !closing && self.written + 8 + json.len() as u64 > self.cap {
            self.refused += 1;
            return;
        }
        if let Err(e) = self.put(&json) {
            self.error = Some(e);
        }
    }

    fn full(&self) -> bool {
        self.capped() || self.error.is_some()
    }
}

/// Every frame of the file at `path`, checked: magic, version, checksums, header first, end
/// last.
pub fn read(path: &Path) -> Result<Vec<Frame>, ReadError> {
    let io = |source| ReadError::Io { path: path.to_owned(), source };
    let file = File::open(path).map_err(io)?;
    parse(BufReader::new(file), path)
}

/// A recording held in memory (one fetched from an agent); `name` stands for its path in errors.
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Vec<Frame>, ReadError> {
    parse(bytes, name)
}

fn parse(mut r: impl Read, path: &Path) -> Result<Vec<Frame>, ReadError> {
    let p = || path.to_owned();
    let mut magic = [0u8; MAGIC.len()];
    match fill(&mut r, &mut magic) {
        Ok(n) if n == MAGIC.len() && &magic == MAGIC => {}
        Ok(_) => return Err(ReadError::Foreign(p())),
        Err(source) => return Err(ReadError::Io { path: p(), source }),
    }
    let mut word = [0u8; 4];
    let mut offset = MAGIC.len() as u64;
    if fill(&mut r, &mut word).map_err(|source| ReadError::Io { path: p(), source })? < 4 {
        return Err(ReadError::Truncated { path: p(), offset });
    }
    let found = u32::from_le_bytes(word);
    if !(OLDEST..=VERSION).contains(&found) {
        return Err(ReadError::Version { path: p(), found });
    }
    offset += 4;
    let corrupt = |offset, what: String| ReadError::Corrupt { path: p(), offset, what };
    let mut frames = Vec::new();
    loop {
        let mut head = [0u8; 8];
        match fill(&mut r, &mut head) {
            Ok(8) => {}
            Ok(0) => break,
            Ok(_) => return Err(ReadError::Truncated { path: p(), offset }),
            Err(source) => return Err(ReadError::Io { path: p(), source }),
        }
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if len > MAX_FRAME {
            return Err(corrupt(offset, format!("a frame length of {len} bytes")));
        }
        let mut json = vec![0u8; len as usize];
        match fill(&mut r, &mut json) {
            Ok(n) if n == json.len() => {}
            Ok(_) => return Err(ReadError::Truncated { path: p(), offset }),
            Err(source) => return Err(ReadError::Io { path: p(), source }),
        }
        if crc32fast::hash(&json) != crc {
            return Err(corrupt(offset, "checksum mismatch".into()));
        }
        let frame: Frame = serde_json::from_slice(&json)
            .map_err(|e| corrupt(offset, format!("not a frame this netprobe knows: {e}")))?;
        let first = frames.is_empty();
        match (&frame, first) {
            (Frame::Header(_), true) => {}
            (_, true) => return Err(corrupt(offset, "the first frame is not the header".into())),
            (Frame::Header(_), false) => return Err(corrupt(offset, "a second header".into())),
            _ if matches!(frames.last(), Some(Frame::End(_))) => {
                return Err(corrupt(offset, "frames after the end frame".into()))
            }
            _ => {}
        }
        frames.push(frame);
        offset += 8 + u64::from(len);
    }
    match frames.last() {
        Some(Frame::End(_)) => Ok(frames),
        _ => Err(ReadError::NoEnd(p())),
    }
}

/// Reads until `buf` is full or EOF; how many bytes were read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frames::{fixture, End, Snapshot};

    fn frames() -> Vec<Frame> {
        vec![
            Frame::Header(fixture::header(&[])),
            Frame::Pods([(7, crate::pods::tests::meta("pod-a"))].into()),
            Frame::Snapshot(Snapshot { t_ns: 5, ..Default::default() }),
            Frame::End(End { t_ns: 9, complete: true, note: None }),
        ]
    }

    /// A recording of `frames` as bytes, through the real writer.
    fn bytes(frames: &[Frame], cap: u64) -> Vec<u8> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("np-rec-{}-{n}", std::process::id()));
        let mut w = Writer::create(&path, cap).unwrap();
        for f in frames {
            w.frame(f);
        }
        w.close().unwrap();
        let b = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        b
    }

    fn parse_bytes(b: &[u8]) -> Result<Vec<Frame>, ReadError> {
        parse(b, Path::new("test.np"))
    }

    #[test]
    fn round_trip() {
        assert_eq!(parse_bytes(&bytes(&frames(), 1 << 30)).unwrap(), frames());
    }

    #[test]
    fn every_truncation_is_an_error_saying_so() {
        let b = bytes(&frames(), 1 << 30);
        for len in 0..b.len() {
            match parse_bytes(&b[..len]) {
                Err(ReadError::Foreign(_)) => assert!(len < MAGIC.len(), "at {len}"),
                Err(ReadError::Truncated { .. } | ReadError::NoEnd(_)) => {}
                other => panic!("cut at {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_flipped_byte_is_an_error() {
        let b = bytes(&frames(), 1 << 30);
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x41;
            assert!(parse_bytes(&c).is_err(), "flipped byte {i} went unnoticed");
        }
    }

    #[test]
    fn foreign_and_future_files_are_named_as_such() {
        let e = parse_bytes(b"{\"frame\":\"header\"}").unwrap_err();
        assert!(e.to_string().contains("not a netprobe recording"), "{e}");
        let mut b = bytes(&frames(), 1 << 30);
        b[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&7u32.to_le_bytes());
        let e = parse_bytes(&b).unwrap_err();
        assert!(e.to_string().contains("format version 7"), "{e}");
    }

    #[test]
    fn the_cap_keeps_the_closing_frames() {
        let mut many = frames();
        let end = many.pop().unwrap();
        let event = Frame::Snapshot(Snapshot { t_ns: 6, ..Default::default() });
        many.extend(std::iter::repeat_n(event, 20_000));
        many.push(end);
        let cap = RESERVE + 100_000;
        let b = bytes(&many, cap);
        assert!((b.len() as u64) < cap, "{} bytes over a cap of {cap}", b.len());
        let read = parse_bytes(&b).unwrap();
        assert!(read.len() < many.len());
        assert!(matches!(read.last(), Some(Frame::End(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whatever follows a valid start, the reader answers with frames or an error.
        #[test]
        fn never_panics_on_garbage(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut b = MAGIC.to_vec();
            b.extend(VERSION.to_le_bytes());
            b.extend(&tail);
            let _ = parse_bytes(&b);
            let _ = parse_bytes(&tail);
        }

        /// Random edits of a real recording: an error, or exactly the original frames. (The
        /// version is outside the checksums: set to an older one it reads, these frames read
        /// the same.)
        #[test]
        fn edits_are_caught(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
            let mut b = bytes(&frames(), 1 << 30);
            for (at, v) in edits {
                let i = at % b.len();
                b[i] = v;
            }
            if let Ok(read) = parse_bytes(&b) {
                prop_assert_eq!(read, frames());
            }
        }
    }
}
