//! Layer blobs: their compression (plain, gzip, zstd), and stacking one onto an
//! image's root with [`crate::image::apply_layer`] (whiteouts included).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use ruzstd::decoding::{FrameDecoder, StreamingDecoder};

use super::RegistryError;
use crate::image::Unpacked;

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (one or more members).
    Gzip,
    /// zstd (one or more frames).
    Zstd,
}

/// zstd's frame magic, little endian 0xFD2FB528.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Tells the compression from the first bytes of a blob.
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type of this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
        }
    }
}

/// A zstd stream of any number of frames.
struct Zstd<R: BufRead> {
    dec: Option<StreamingDecoder<R, FrameDecoder>>,
    src: Option<R>,
}

fn zstd_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("zstd: {e}"))
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(d) = self.dec.as_mut() {
                let n = d.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.src = self.dec.take().map(StreamingDecoder::into_inner);
            }
            let Some(mut src) = self.src.take() else {
                return Ok(0);
            };
            if src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            self.dec = Some(StreamingDecoder::new(src).map_err(zstd_err)?);
        }
    }
}

/// The uncompressed tar stream of a blob.
pub fn decompress<'a>(
    r: impl Read + Send + 'a,
    c: Compression,
) -> Result<Box<dyn Read + Send + 'a>, io::Error> {
    let br = BufReader::with_capacity(256 * 1024, r);
    Ok(match c {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(br)),
        Compression::Zstd => Box::new(Zstd {
            dec: None,
            src: Some(br),
        }),
    })
}

/// Counts what is read through it and reports it every MiB.
struct Progress<R, F> {
    inner: R,
    read: u64,
    reported: u64,
    f: F,
}

impl<R: Read, F: FnMut(u64)> Read for Progress<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read - self.reported >= 1 << 20 {
            self.reported = self.read;
            (self.f)(self.read);
        }
        Ok(n)
    }
}

/// Unpacks the layer blob at `blob` onto `dest`, reporting the compressed bytes
/// consumed to `progress`. Returns what [`crate::image::apply_layer`] returns (its
/// `diff_id` is the uncompressed stream's sha256, to check against the config).
pub fn apply_blob(
    blob: &Path,
    digest: &str,
    compression: Option<Compression>,
    dest: &Path,
    max_bytes: u64,
    progress: impl FnMut(u64) + Send,
) -> Result<Unpacked, RegistryError> {
    let mut f = BufReader::new(File::open(blob).map_err(RegistryError::io("open", blob))?);
    let c = match compression {
        Some(c) => c,
        None => Compression::sniff(f.fill_buf().map_err(RegistryError::io("read", blob))?),
    };
    let counted = Progress {
        inner: f,
        read: 0,
        reported: 0,
        f: progress,
    };
    let unpack = |source| RegistryError::Unpack {
        digest: digest.to_string(),
        source,
    };
    let r = decompress(counted, c).map_err(|e| {
        unpack(crate::RuntimeError::Tar {
            dest: dest.to_path_buf(),
            source: e,
        })
    })?;
    crate::image::apply_layer(r, dest, max_bytes).map_err(unpack)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(&ZSTD_MAGIC), Compression::Zstd);
        assert_eq!(Compression::sniff(b"etc/\0\0"), Compression::None);
    }

    #[test]
    fn gzip_members_concatenated() {
        use std::io::Write;
        let mut all = Vec::new();
        for part in [&b"hello "[..], &b"world"[..]] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            assert!(gz.write_all(part).is_ok());
            all.extend(gz.finish().unwrap_or_default());
        }
        let mut out = String::new();
        let r = decompress(&all[..], Compression::Gzip).map(|mut r| r.read_to_string(&mut out));
        assert!(matches!(r, Ok(Ok(_))));
        assert_eq!(out, "hello world");
    }
}
