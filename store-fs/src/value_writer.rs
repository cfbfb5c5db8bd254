//! Large values written as they are encoded ([`store_core::Backend::value_writer`]): the
//! pieces go into a temp file while the engine hashes them — through zstd, or, for content
//! that compresses poorly, framed in raw blocks — and the file is renamed to the value's name
//! once that is known. The file is byte for byte the one `put_value` makes of the whole value.
//! The file's writes (and a raw frame's checksum) happen on a thread of their own
//! ([`BackgroundFile`]), beside the encoding, hashing and compressing.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use store_core::{Error, Id, Result, ValueWriter};

use crate::blob::RawFrame;
use crate::write::{self, Durability, FaultySink};
use crate::{blob, layout, open, FsBackend};

// The engine's first piece is what the blob's level is chosen from: the same bytes as for a
// value stored whole.
const _: () = assert!(blob::STREAM_THRESHOLD == store_core::LARGE_VALUE);

impl FsBackend {
    /// See [`store_core::Backend::value_writer`]: a writer for values of at least
    /// [`blob::STREAM_THRESHOLD`] bytes (which are loose blobs in every format), `None` for
    /// smaller ones.
    pub(crate) fn large_value_writer(
        &self,
        len: u64,
        first: &[u8],
    ) -> Result<Option<Box<dyn ValueWriter>>> {
        if len < blob::STREAM_THRESHOLD as u64 || first.len() < blob::STREAM_THRESHOLD {
            return Ok(None);
        }
        let tmp = self.inner.tmp.join(write::unique_name());
        let file = File::create_new(&tmp).map_err(|e| Error::io("create temp file", &tmp, e))?;
        let mut writer = LargeValueWriter {
            backend: self.clone(),
            tmp,
            stream: None,
            len,
            written: 0,
        };
        let sink = FaultySink::new(file);
        let fail = |e: io::Error, tmp: &PathBuf| Error::io("start a thread to write", tmp, e);
        writer.stream = Some(
            match blob::level_for(first, self.inner.config.zstd_level)? {
                None => {
                    let frame =
                        RawFrame::new(sink, len).map_err(|e| Error::io("write", &writer.tmp, e))?;
                    Stream::Raw(BackgroundFile::new(frame).map_err(|e| fail(e, &writer.tmp))?)
                }
                Some(level) => {
                    let file = BackgroundFile::new(sink).map_err(|e| fail(e, &writer.tmp))?;
                    Stream::Zstd(blob::zstd_stream(level, len, file, &writer.tmp)?)
                }
            },
        );
        Ok(Some(Box::new(writer)))
    }
}

/// How a large value's pieces reach its file.
enum Stream {
    /// Compressed on the caller's thread; the frame written by a thread.
    Zstd(zstd::stream::write::Encoder<'static, BackgroundFile<FaultySink>>),
    /// Framed in raw blocks, checksummed and written by a thread.
    Raw(BackgroundFile<RawFrame<FaultySink>>),
}

/// A large value on its way into `values/`: a temp file until committed, removed if dropped
/// before.
struct LargeValueWriter {
    backend: FsBackend,
    tmp: PathBuf,
    /// `None` once finished.
    stream: Option<Stream>,
    /// The length announced, and the bytes written so far.
    len: u64,
    written: u64,
}

impl LargeValueWriter {
    fn fail(&self, e: io::Error) -> Error {
        Error::io("write a large value into", &self.tmp, e)
    }
}

impl ValueWriter for LargeValueWriter {
    fn write(&mut self, piece: &[u8]) -> Result<()> {
        let written = match self.stream.as_mut().expect("written before commit") {
            Stream::Zstd(encoder) => encoder.write_all(piece),
            Stream::Raw(file) => file.write_all(piece),
        };
        written.map_err(|e| self.fail(e))?;
        self.written += piece.len() as u64;
        Ok(())
    }

    fn write_shared(&mut self, piece: &Arc<Vec<u8>>) -> Result<()> {
        let written = match self.stream.as_mut().expect("written before commit") {
            Stream::Zstd(encoder) => encoder.write_all(piece),
            Stream::Raw(file) => file.hand_over_shared(piece.clone()),
        };
        written.map_err(|e| self.fail(e))?;
        self.written += piece.len() as u64;
        Ok(())
    }

    fn commit(mut self: Box<Self>, cid: &Id) -> Result<()> {
        if self.written != self.len {
            return Err(Error::io(
                "write a large value into",
                &self.tmp,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "value {cid} was announced as {} bytes and {} were written",
                        self.len, self.written
                    ),
                ),
            ));
        }
        let file = match self.stream.take().expect("committed once") {
            Stream::Zstd(encoder) => encoder.finish().and_then(BackgroundFile::finish),
            Stream::Raw(file) => file.finish().and_then(RawFrame::finish),
        };
        let file = file.map_err(|e| self.fail(e))?.into_inner();
        let durability = self.backend.inner.durability;
        if durability == Durability::Sync {
            file.sync_all()
                .map_err(|e| Error::io("fsync", &self.tmp, e))?;
        }
        drop(file);
        let dest = layout::value_path(&self.backend.inner.root, cid);
        // Names are hashes: a file there has this content (anything else is replaced).
        if !open::is_regular(&dest) {
            write::rename_into(&self.tmp, &dest, durability)?;
        }
        Ok(())
    }
}

impl Drop for LargeValueWriter {
    fn drop(&mut self) {
        // Renamed into place, or never to be: either way no temp file stays behind.
        drop(self.stream.take());
        let _ = fs::remove_file(&self.tmp);
    }
}

/// What a [`BackgroundFile`]'s thread is handed: a chunk of its own (handed back for reuse
/// once written), or a piece it shares with its maker (the engine's encoded pieces, which
/// another thread may be hashing).
enum Piece {
    Own(Vec<u8>),
    Shared(Arc<Vec<u8>>),
}

/// A writer `W` driven by a thread of its own: what is written to it is copied into mebibyte
/// chunks (or handed over shared, [`BackgroundFile::hand_over_shared`]), and the thread writes them
/// into `W` (through the fault-injection budget) and hands the chunks back for reuse. The
/// first error stops the thread; the next write or [`BackgroundFile::finish`] returns it.
struct BackgroundFile<W: Write + Send + 'static> {
    chunk: Vec<u8>,
    to_thread: Option<SyncSender<Piece>>,
    returned: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<W>>>,
}

/// The size of the chunks a [`BackgroundFile`] hands its thread.
const CHUNK: usize = 1 << 20;

impl<W: Write + Send + 'static> BackgroundFile<W> {
    fn new(mut out: W) -> io::Result<BackgroundFile<W>> {
        let (to_thread, pieces) = mpsc::sync_channel::<Piece>(2);
        let (give_back, returned) = mpsc::sync_channel::<Vec<u8>>(4);
        let thread = std::thread::Builder::new()
            .name("mandala-write".into())
            .spawn(move || {
                for piece in pieces {
                    match piece {
                        Piece::Own(mut chunk) => {
                            out.write_all(&chunk)?;
                            chunk.clear();
                            let _ = give_back.try_send(chunk);
                        }
                        Piece::Shared(piece) => out.write_all(&piece)?,
                    }
                }
                Ok(out)
            })?;
        Ok(BackgroundFile {
            chunk: Vec::with_capacity(CHUNK),
            to_thread: Some(to_thread),
            returned,
            thread: Some(thread),
        })
    }

    /// Hands `piece`, shared, to the thread after what was copied before it (or returns the
    /// thread's error, if it stopped).
    fn hand_over_shared(&mut self, piece: Arc<Vec<u8>>) -> io::Result<()> {
        if !self.chunk.is_empty() {
            self.hand_over_chunk()?;
        }
        self.send(Piece::Shared(piece))
    }

    /// Hands the current chunk to the thread, and takes a returned one (or a new one) to
    /// fill next.
    fn hand_over_chunk(&mut self) -> io::Result<()> {
        let next = self
            .returned
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let full = std::mem::replace(&mut self.chunk, next);
        self.send(Piece::Own(full))
    }

    /// Sends `piece` to the thread, or returns its error if it stopped.
    fn send(&mut self, piece: Piece) -> io::Result<()> {
        let sent = match &self.to_thread {
            Some(to_thread) => to_thread.send(piece).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            Err(self
                .stop()
                .err()
                .unwrap_or_else(|| io::Error::other("the thread writing the file stopped")))
        }
    }

    /// Stops the thread once it wrote what it was given; the writer, or the first error.
    fn stop(&mut self) -> io::Result<W> {
        drop(self.to_thread.take());
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the thread writing the file panicked"))),
            None => Err(io::Error::other("the thread writing the file stopped")),
        }
    }

    /// Writes what is left and returns the writer once every byte is written.
    fn finish(mut self) -> io::Result<W> {
        if !self.chunk.is_empty() {
            self.hand_over_chunk()?;
        }
        self.stop()
    }
}

impl<W: Write + Send + 'static> Write for BackgroundFile<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.hand_over_chunk()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write + Send + 'static> Drop for BackgroundFile<W> {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use store_core::{Backend, Kind};

    use super::*;
    use crate::write::stray_temp_files;
    use crate::OpenOptions;

    /// `n` bytes that zstd cannot shrink (`noise`) or that it can.
    fn content(n: usize, noise: bool) -> Vec<u8> {
        if noise {
            crate::blob::noise(n)
        } else {
            (0..n).map(|i| (i / 64 % 7) as u8).collect()
        }
    }

    /// Writes `bytes` through a value writer in pieces of `piece` bytes (the first one
    /// `first` bytes), copied and shared in turn (two of each: a shared piece must follow
    /// what was copied before it), and commits it; its id.
    fn write_in_pieces(fs: &FsBackend, bytes: &[u8], first: usize, piece: usize) -> Id {
        let mut w = fs
            .value_writer(bytes.len() as u64, &bytes[..first])
            .unwrap()
            .expect("a large value");
        let pieces = std::iter::once(&bytes[..first]).chain(bytes[first..].chunks(piece));
        for (i, p) in pieces.enumerate() {
            if i % 4 < 2 {
                w.write(p).unwrap();
            } else {
                w.write_shared(&std::sync::Arc::new(p.to_vec())).unwrap();
            }
        }
        let cid = Id::hash(Kind::Value, bytes);
        w.commit(&cid).unwrap();
        cid
    }

    #[test]
    fn a_value_written_in_pieces_is_the_file_put_value_makes_of_it_whole() {
        for durability in [Durability::Flush, Durability::Sync] {
            let d = tempfile::tempdir().unwrap();
            let options = OpenOptions {
                durability,
                ..OpenOptions::default()
            };
            let whole = FsBackend::open_with(&d.path().join("whole"), options.clone()).unwrap();
            let pieces = FsBackend::open_with(&d.path().join("pieces"), options).unwrap();
            // Poorly compressible (raw blocks) and compressible (at the store's level), over
            // several zstd jobs; pieces of odd sizes.
            for (noise, n, first, piece) in [
                (true, 9 << 20, 1 << 20, 1 << 20),
                (true, (5 << 20) + 3, (1 << 20) + 7, 333_333),
                (false, (5 << 20) + 3, (1 << 20) + 7, 333_333),
            ] {
                let bytes = content(n, noise);
                let cid = write_in_pieces(&pieces, &bytes, first, piece);
                whole.put_value(&cid, &bytes).unwrap();
                let read = |fs: &FsBackend| fs::read(layout::value_path(&fs.inner.root, &cid));
                assert_eq!(
                    read(&pieces).unwrap(),
                    read(&whole).unwrap(),
                    "noise: {noise}"
                );
                assert_eq!(pieces.get_value(&cid).unwrap().as_deref(), Some(&bytes[..]));
            }
            assert!(stray_temp_files(&pieces.inner.tmp).unwrap().is_empty());
        }
    }

    #[test]
    fn a_writer_leaves_nothing_unless_committed_with_all_it_announced() {
        let d = tempfile::tempdir().unwrap();
        let fs = FsBackend::open(&d.path().join("s")).unwrap();
        let bytes = content(3 << 20, true);
        let cid = Id::hash(Kind::Value, &bytes);
        let len = bytes.len() as u64;

        // Small values are put whole.
        assert!(fs.value_writer(1000, &bytes[..1000]).unwrap().is_none());

        // Dropped half-way: no temp file, no value.
        let mut w = fs.value_writer(len, &bytes[..1 << 20]).unwrap().unwrap();
        w.write(&bytes[..2 << 20]).unwrap();
        assert_eq!(stray_temp_files(&fs.inner.tmp).unwrap().len(), 1);
        drop(w);
        assert!(stray_temp_files(&fs.inner.tmp).unwrap().is_empty());
        assert!(!fs.has_value(&cid).unwrap());

        // Committed short of its length: refused, naming the value, and cleaned up.
        let mut w = fs.value_writer(len, &bytes[..1 << 20]).unwrap().unwrap();
        w.write(&bytes[..2 << 20]).unwrap();
        let e = w.commit(&cid).unwrap_err().to_string();
        assert!(
            e.contains(&cid.to_string())
                && e.contains("announced as 3145728 bytes and 2097152 were written"),
            "{e}"
        );
        assert!(stray_temp_files(&fs.inner.tmp).unwrap().is_empty());
        assert!(!fs.has_value(&cid).unwrap());

        // A value stored already stays as it is.
        write_in_pieces(&fs, &bytes, 1 << 20, 1 << 20);
        let path = layout::value_path(&fs.inner.root, &cid);
        let before = fs::metadata(&path).unwrap().modified().unwrap();
        write_in_pieces(&fs, &bytes, 1 << 20, 1 << 20);
        assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), before);
        assert!(stray_temp_files(&fs.inner.tmp).unwrap().is_empty());
    }
}
