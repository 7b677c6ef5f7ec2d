//! Review images for customs officers: the scan with each flagged box drawn, labelled with its
//! label and score, written as PNG (`tusk scan --overlay DIR`). Text uses a built-in 5×7 pixel
//! font, so no font file is needed.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use sha2::{Digest, Sha256};

use crate::record::Record;

/// One colour per label, in order of first appearance on the image (high contrast on the
/// orange/green/blue scanner palette and on grey).
const COLOURS: [[u8; 3]; 4] = [[255, 0, 255], [255, 0, 0], [0, 200, 255], [255, 255, 0]];

/// Rows of a 5×7 glyph, 5 bits each (bit 4 = leftmost column).
fn glyph(c: char) -> [u8; 7] {
    match c.to_ascii_uppercase() {
        'A' => [14, 17, 17, 31, 17, 17, 17],
        'B' => [30, 17, 17, 30, 17, 17, 30],
        'C' => [14, 17, 16, 16, 16, 17, 14],
        'D' => [30, 17, 17, 17, 17, 17, 30],
        'E' => [31, 16, 16, 30, 16, 16, 31],
        'F' => [31, 16, 16, 30, 16, 16, 16],
        'G' => [14, 17, 16, 23, 17, 17, 15],
        'H' => [17, 17, 17, 31, 17, 17, 17],
        'I' => [14, 4, 4, 4, 4, 4, 14],
        'J' => [7, 2, 2, 2, 2, 18, 12],
        'K' => [17, 18, 20, 24, 20, 18, 17],
        'L' => [16, 16, 16, 16, 16, 16, 31],
        'M' => [17, 27, 21, 21, 17, 17, 17],
        'N' => [17, 17, 25, 21, 19, 17, 17],
        'O' => [14, 17, 17, 17, 17, 17, 14],
        'P' => [30, 17, 17, 30, 16, 16, 16],
        'Q' => [14, 17, 17, 17, 21, 18, 13],
        'R' => [30, 17, 17, 30, 20, 18, 17],
        'S' => [15, 16, 16, 14, 1, 1, 30],
        'T' => [31, 4, 4, 4, 4, 4, 4],
        'U' => [17, 17, 17, 17, 17, 17, 14],
        'V' => [17, 17, 17, 17, 17, 10, 4],
        'W' => [17, 17, 17, 21, 21, 21, 10],
        'X' => [17, 17, 10, 4, 10, 17, 17],
        'Y' => [17, 17, 10, 4, 4, 4, 4],
        'Z' => [31, 1, 2, 4, 8, 16, 31],
        '0' => [14, 17, 19, 21, 25, 17, 14],
        '1' => [4, 12, 4, 4, 4, 4, 14],
        '2' => [14, 17, 1, 2, 4, 8, 31],
        '3' => [31, 2, 4, 2, 1, 17, 14],
        '4' => [2, 6, 10, 18, 31, 2, 2],
        '5' => [31, 16, 30, 1, 1, 17, 14],
        '6' => [6, 8, 16, 30, 17, 17, 14],
        '7' => [31, 1, 2, 4, 8, 8, 8],
        '8' => [14, 17, 17, 14, 17, 17, 14],
        '9' => [14, 17, 17, 15, 1, 2, 12],
        '.' => [0, 0, 0, 0, 0, 12, 12],
        '_' => [0, 0, 0, 0, 0, 0, 31],
        '-' => [0, 0, 0, 31, 0, 0, 0],
        ':' => [0, 12, 12, 0, 12, 12, 0],
        _ => [0; 7],
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, colour: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(colour));
    }
}

/// Draws `text` with its top-left corner at (x, y), `scale` pixels per font pixel, on a dark
/// backing so it reads on any scan.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64, colour: [u8; 3]) {
    let (w, h) = (text.chars().count() as i64 * 6 * scale + scale, 9 * scale);
    for yy in y..y + h {
        for xx in x..x + w {
            put(img, xx, yy, [0, 0, 0]);
        }
    }
    for (i, c) in text.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (1 << (4 - col)) != 0 {
                    let (px, py) = (x + scale + (i as i64 * 6 + col) * scale, y + scale + row as i64 * scale);
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, px + dx, py + dy, colour);
                        }
                    }
                }
            }
        }
    }
}

/// Draws a rectangle outline `thickness` pixels wide inside `[x0, y0, x1, y1]`.
pub fn draw_box(img: &mut RgbImage, b: [f32; 4], thickness: i64, colour: [u8; 3]) {
    let [x0, y0, x1, y1] = b.map(|v| v.round() as i64);
    for t in 0..thickness {
        for x in x0..x1 {
            put(img, x, y0 + t, colour);
            put(img, x, y1 - 1 - t, colour);
        }
        for y in y0..y1 {
            put(img, x0 + t, y, colour);
            put(img, x1 - 1 - t, y, colour);
        }
    }
}

/// The review image's file name: the object's file name, made safe, plus a short hash of its
/// full uri so that equal names from different folders or buckets do not collide.
pub fn file_name(uri: &str) -> String {
    let base = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    let safe: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .take(80)
        .collect();
    let digest = hex::encode(&Sha256::digest(uri.as_bytes())[..4]);
    format!("{safe}-{digest}.png")
}

/// Draws the record's flagged boxes on `image` and writes it under `dir`; returns the path.
pub fn write(dir: &Path, record: &Record, image: RgbImage) -> Result<PathBuf, image::ImageError> {
    let path = dir.join(file_name(&record.uri));
    render(record, image).save(&path)?;
    Ok(path)
}

/// The review image: the record's flagged boxes drawn on `image`, each labelled with its label
/// and score, one colour per label.
pub fn render(record: &Record, mut image: RgbImage) -> RgbImage {
    let scale = (image.width().max(image.height()) / 500).clamp(1, 4) as i64;
    let mut labels: Vec<&str> = Vec::new();
    for d in record.detections.iter().filter(|d| d.flagged) {
        let Some(b) = d.bbox else { continue };
        let idx = labels.iter().position(|l| *l == d.label).unwrap_or_else(|| {
            labels.push(&d.label);
            labels.len() - 1
        });
        let colour = COLOURS[idx % COLOURS.len()];
        draw_box(&mut image, b, scale + 1, colour);
        let text = format!("{} {:.2}", d.label, d.score);
        let ty = (b[1] as i64 - 9 * scale).max(0);
        draw_text(&mut image, b[0] as i64, ty, &text, scale, colour);
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_outline_is_drawn_and_inside_is_untouched() {
        let mut img = RgbImage::from_pixel(20, 20, Rgb([9, 9, 9]));
        draw_box(&mut img, [2.0, 3.0, 12.0, 15.0], 1, [255, 0, 0]);
        assert_eq!(img.get_pixel(2, 3).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(11, 14).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(6, 8).0, [9, 9, 9]);
        assert_eq!(img.get_pixel(12, 3).0, [9, 9, 9]);
    }

    #[test]
    fn text_draws_glyph_pixels_and_clips_at_edges() {
        let mut img = RgbImage::new(30, 12);
        draw_text(&mut img, 0, 0, "i1", 1, [0, 255, 0]);
        let lit = img.pixels().filter(|p| p.0 == [0, 255, 0]).count();
        let expected: u32 = ['i', '1'].iter().flat_map(|c| glyph(*c)).map(|r| r.count_ones()).sum();
        assert_eq!(lit as u32, expected);
        draw_text(&mut img, 25, 8, "ivory", 2, [0, 255, 0]); // partly outside: no panic
    }

    #[test]
    fn file_names_are_safe_and_distinct_per_uri() {
        let a = file_name("s3://bucket/a/scan 01.png");
        let b = file_name("s3://bucket/b/scan 01.png");
        assert!(a.starts_with("scan_01-") && a.ends_with(".png"));
        assert_ne!(a, b);
    }
}
