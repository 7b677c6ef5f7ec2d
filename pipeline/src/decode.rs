//! Decoding bytes into an upright 8-bit RGB image, behind size limits checked before any
//! pixel buffer is allocated.
//!
//! JPEGs (YCbCr and greyscale) are decoded by libjpeg-turbo's code (through `mozjpeg`, whose
//! decoder is libjpeg-turbo's): the decoder Pillow uses, so tusk sees the same pixels a Python
//! training script saw, bit for bit, and model scores match. Other formats, and CMYK JPEGs, go
//! through `image`.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, RgbImage};

/// Bounds on what the decoder accepts; anything beyond is a `too_large` failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
    /// Largest accepted width × height.
    pub max_pixels: u64,
    /// Largest allocation the decoder may make, in bytes.
    pub max_alloc: u64,
    /// Largest file read into memory, in bytes.
    pub max_file_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 64_000_000,
            max_alloc: 512 * 1024 * 1024,
            max_file_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Why bytes are not a usable image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The file has no bytes.
    #[error("the file is empty")]
    Empty,
    /// The bytes match no supported image format.
    #[error("not a supported image format (jpeg, png, webp, tiff, gif, bmp)")]
    UnknownFormat,
    /// The header announces an image beyond the limits.
    #[error("{width}×{height} is beyond the limits ({limit})")]
    TooLarge {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// Which limit.
        limit: String,
    },
    /// The decoder would need more memory than allowed.
    #[error("decoding needs more memory than --max-alloc allows: {0}")]
    AllocLimit(String),
    /// The data ends early.
    #[error("the image data ends early: {0}")]
    Truncated(String),
    /// A legal format with a feature the decoder lacks.
    #[error("unsupported image feature: {0}")]
    Unsupported(String),
    /// Anything else the decoder rejects.
    #[error("corrupt image data: {0}")]
    Corrupt(String),
}

impl DecodeError {
    /// The stable reason code for failure records.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty_file",
            DecodeError::UnknownFormat => "unknown_format",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::AllocLimit(_) => "alloc_limit",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::Unsupported(_) => "unsupported",
            DecodeError::Corrupt(_) => "corrupt",
        }
    }
}

fn classify(e: ImageError) -> DecodeError {
    match e {
        ImageError::Limits(l) => match l.kind() {
            image::error::LimitErrorKind::InsufficientMemory => DecodeError::AllocLimit(l.to_string()),
            _ => DecodeError::TooLarge {
                width: 0,
                height: 0,
                limit: l.to_string(),
            },
        },
        ImageError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Truncated(io.to_string())
        }
        ImageError::Unsupported(u) => match u.kind() {
            image::error::UnsupportedErrorKind::Format(image::error::ImageFormatHint::Unknown) => {
                DecodeError::UnknownFormat
            }
            _ => DecodeError::Unsupported(u.to_string()),
        },
        other => {
            let text = other.to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("eof") || lower.contains("end of file") || lower.contains("truncated")
                || lower.contains("unexpected end") || lower.contains("no more bytes")
            {
                DecodeError::Truncated(text)
            } else {
                DecodeError::Corrupt(text)
            }
        }
    }
}

/// An upright RGB image and its size.
#[derive(Debug)]
pub struct Decoded {
    /// The pixels, EXIF orientation applied, 8 bits per channel.
    pub rgb: RgbImage,
}

/// JPEG data must end with the End-Of-Image marker (trailing padding allowed); decoders
/// otherwise fill missing scan lines with grey and call the result valid.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let end = bytes.iter().rposition(|b| *b != 0 && *b != b'\n' && *b != b'\r' && *b != b' ');
    // Look for FF D9 near the end: some encoders append a few bytes of junk after it.
    end.map(|e| {
        let tail = &bytes[e.saturating_sub(64)..=e];
        tail.windows(2).any(|w| w == [0xFF, 0xD9])
    })
    .unwrap_or(false)
}

/// Decodes `bytes`: format from the content, limits before allocation, EXIF orientation,
/// first frame of animations, 16-bit and grey converted to 8-bit RGB.
pub fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let format = reader.format().ok_or(DecodeError::UnknownFormat)?;
    // Width and height are checked below, from the header, so the error can name them; the
    // decoder itself enforces the allocation limit.
    let mut image_limits = image::Limits::default();
    image_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(classify)?;
    let (width, height) = decoder.dimensions();
    if width > limits.max_width || height > limits.max_height {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: format!("--max-width {} / --max-height {}", limits.max_width, limits.max_height),
        });
    }
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(DecodeError::TooLarge {
            width,
            height,
            limit: format!("--max-pixels {}", limits.max_pixels),
        });
    }
    if width == 0 || height == 0 {
        return Err(DecodeError::Corrupt(format!("{width}×{height} image")));
    }
    if format == image::ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(DecodeError::Truncated("no JPEG end-of-image marker".into()));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let libjpeg = if format == image::ImageFormat::Jpeg { decode_jpeg(bytes)? } else { None };
    let mut img = match libjpeg {
        Some(rgb) => DynamicImage::ImageRgb8(rgb),
        None => DynamicImage::from_decoder(decoder).map_err(|e| match classify(e) {
            DecodeError::TooLarge { limit, .. } => DecodeError::TooLarge { width, height, limit },
            other => other,
        })?,
    };
    img.apply_orientation(orientation);
    let rgb = match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        other => other.to_rgb8(),
    };
    Ok(Decoded { rgb })
}

/// Decodes a YCbCr or greyscale JPEG to RGB with libjpeg-turbo's default settings (the
/// accurate integer IDCT, fancy upsampling), as Pillow does. `None` for colour spaces it leaves
/// to `image` (CMYK, YCCK). libjpeg reports fatal errors by unwinding, caught here.
fn decode_jpeg(bytes: &[u8]) -> Result<Option<RgbImage>, DecodeError> {
    use mozjpeg::ColorSpace;
    let run = || -> std::io::Result<Option<RgbImage>> {
        let d = mozjpeg::Decompress::new_mem(bytes)?;
        if !matches!(d.color_space(), ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_RGB) {
            return Ok(None);
        }
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(RgbImage::from_raw(w, h, pixels))
    };
    match std::panic::catch_unwind(run) {
        Ok(Ok(Some(img))) => Ok(Some(img)),
        Ok(Ok(None)) => Ok(None),
        Ok(Err(e)) => Err(DecodeError::Corrupt(e.to_string())),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "libjpeg error".into());
            Err(DecodeError::Corrupt(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(img: &DynamicImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png).unwrap();
        out
    }

    #[test]
    fn sixteen_bit_grey_becomes_rgb8_with_scaled_values() {
        let grey = image::ImageBuffer::from_pixel(3, 2, image::Luma([65535u16]));
        let bytes = png(&DynamicImage::ImageLuma16(grey));
        let d = decode(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(d.rgb.dimensions(), (3, 2));
        assert_eq!(d.rgb.get_pixel(0, 0).0, [255, 255, 255]);
    }

    #[test]
    fn empty_and_text_are_distinct_reasons() {
        let limits = DecodeLimits::default();
        assert_eq!(decode(b"", &limits).unwrap_err().reason(), "empty_file");
        assert_eq!(decode(b"hello, world", &limits).unwrap_err().reason(), "unknown_format");
    }

    #[test]
    fn limits_apply_before_decoding() {
        let img = DynamicImage::ImageRgb8(RgbImage::new(40, 30));
        let limits = DecodeLimits {
            max_pixels: 1000,
            ..DecodeLimits::default()
        };
        assert_eq!(decode(&png(&img), &limits).unwrap_err().reason(), "too_large");
    }
}
