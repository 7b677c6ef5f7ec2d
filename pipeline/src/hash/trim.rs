//! Finds the picture inside a uniform border or frame, so that a re-post with a border added
//! hashes like the original (and the original's own plain margins do not matter either).

use image::RgbImage;

/// Largest per-channel difference from the border colour that still counts as border
/// (absorbs JPEG noise and ringing in flat areas).
const TOLERANCE: u8 = 16;
/// Share of a line, in thousandths, that may differ and it still counts as border.
const OUTLIERS_PER_MILLE: usize = 10;
/// Rounds of trimming, each with the colour of the current corners (frame, mat, margin).
const MAX_ROUNDS: usize = 6;

/// The region `(x, y, width, height)` left after removing uniform borders. Each round takes the
/// colour the current corners share and peels rows and columns of that colour from all four
/// sides; the next round does the same inside, so a frame with a mat and a margin all go. The
/// whole image comes back when it is uniform or when too little would be left.
pub fn content_rect(img: &RgbImage) -> (u32, u32, u32, u32) {
    let (w, h) = img.dimensions();
    let full = (0, 0, w, h);
    if w < 8 || h < 8 {
        return full;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (0u32, 0u32, w, h);
    for _ in 0..MAX_ROUNDS {
        let Some(c) = corner_colour(img, [(x0, y0), (x1 - 1, y0), (x0, y1 - 1), (x1 - 1, y1 - 1)]) else { break };
        let before = (x0, y0, x1, y1);
        while y1 - y0 > 2 && matches(img, y0, x0, x1, c) {
            y0 += 1;
        }
        while y1 - y0 > 2 && matches(img, y1 - 1, x0, x1, c) {
            y1 -= 1;
        }
        x0 += border_cols(img, x0, x1, y0..y1, c, false);
        x1 -= border_cols(img, x0, x1, y0..y1, c, true);
        if (x0, y0, x1, y1) == before {
            break;
        }
    }
    let (cw, ch) = (x1 - x0, y1 - y0);
    if cw < 8.max(w / 20) || ch < 8.max(h / 20) {
        return full;
    }
    (x0, y0, cw, ch)
}

/// The colour at least three of the four corners share (their per-channel median), if any.
fn corner_colour(img: &RgbImage, corners: [(u32, u32); 4]) -> Option<[u8; 3]> {
    let px: Vec<[u8; 3]> = corners.iter().map(|&(x, y)| img.get_pixel(x, y).0).collect();
    let mut median = [0u8; 3];
    for (c, m) in median.iter_mut().enumerate() {
        let mut v: Vec<u8> = px.iter().map(|p| p[c]).collect();
        v.sort_unstable();
        *m = ((v[1] as u16 + v[2] as u16) / 2) as u8;
    }
    let agree = px.iter().filter(|p| !differs(&p[..], median)).count();
    (agree >= 3).then_some(median)
}

/// How many columns of `x0..x1` match `colour` (as [`matches`] decides) in a run from the left
/// edge, or from the right edge when `from_right`, leaving at least two. Columns are counted in
/// growing groups (1, 2, 4, … 32) from contiguous pieces of rows, instead of one strided column
/// at a time; the answer is the same.
fn border_cols(img: &RgbImage, x0: u32, x1: u32, rows: std::ops::Range<u32>, colour: [u8; 3], from_right: bool) -> u32 {
    let (raw, w) = (img.as_raw(), img.width() as usize);
    let allowed = rows.len() * OUTLIERS_PER_MILLE / 1000;
    let mut peeled = 0u32;
    let mut group = 1u32;
    let mut far = [0usize; 32];
    while x1 - x0 - peeled > 2 {
        let k = group.min(x1 - x0 - peeled - 2) as usize;
        // the group's columns, nearest the edge first
        let start = if from_right { x1 - peeled - k as u32 } else { x0 + peeled } as usize;
        far[..k].fill(0);
        for y in rows.clone() {
            let s = (y as usize * w + start) * 3;
            for (i, p) in raw[s..s + k * 3].chunks_exact(3).enumerate() {
                far[i] += differs(p, colour) as usize;
            }
        }
        for i in 0..k {
            if far[if from_right { k - 1 - i } else { i }] > allowed {
                return peeled;
            }
            peeled += 1;
        }
        group = (group * 2).min(32);
    }
    peeled
}

/// Whether an RGB pixel is farther than [`TOLERANCE`] from `colour` in any channel.
#[inline]
fn differs(p: &[u8], colour: [u8; 3]) -> bool {
    (0..3).any(|c| p[c].abs_diff(colour[c]) > TOLERANCE)
}

/// Whether (nearly) all pixels of row `y` between `from` and `to` are within [`TOLERANCE`] of
/// `colour`.
fn matches(img: &RgbImage, y: u32, from: u32, to: u32, colour: [u8; 3]) -> bool {
    let n = (to - from) as usize;
    let allowed = n * OUTLIERS_PER_MILLE / 1000;
    let s = (y as usize * img.width() as usize + from as usize) * 3;
    // contiguous: counting over the slice vectorises (a border row is read whole anyway)
    let off = img.as_raw()[s..s + n * 3].chunks_exact(3).filter(|p| differs(p, colour)).count();
    off <= allowed
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn noise(w: u32, h: u32) -> RgbImage {
        let mut s = 12345u32;
        RgbImage::from_fn(w, h, |_, _| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let v = (s >> 16) as u8;
            Rgb([v, v.wrapping_mul(3), v.wrapping_add(90)])
        })
    }

    fn framed(inner: &RgbImage, pad: u32, colour: [u8; 3]) -> RgbImage {
        let mut out = RgbImage::from_pixel(inner.width() + 2 * pad, inner.height() + 3 * pad, Rgb(colour));
        image::imageops::replace(&mut out, inner, pad as i64, pad as i64);
        out
    }

    #[test]
    fn trims_added_borders_back_to_the_picture() {
        let pic = noise(100, 80);
        assert_eq!(content_rect(&pic), (0, 0, 100, 80));
        let white = framed(&pic, 12, [255, 255, 255]);
        assert_eq!(content_rect(&white), (12, 12, 100, 80));
        // A black frame inside a white one goes too.
        let nested = framed(&framed(&pic, 5, [0, 0, 0]), 9, [250, 250, 250]);
        assert_eq!(content_rect(&nested), (14, 14, 100, 80));
    }

    #[test]
    fn grouped_column_peeling_equals_one_column_at_a_time() {
        let colour = [240, 240, 240];
        // border widths on each side, and a column (from the edge) spoilt by five dark pixels
        for (left, right, bad) in [(0, 0, 99), (1, 0, 99), (3, 70, 99), (45, 2, 13), (90, 90, 37), (200, 30, 64), (150, 149, 0), (150, 150, 299)] {
            let (w, h) = (300u32, 120u32);
            let mut img = noise(w, h);
            for y in 0..h {
                for (d, x) in (0..left).map(|x| (x, x)).chain((w - right..w).map(|x| (w - 1 - x, x))) {
                    // one odd pixel per column stays border (1 %); five do not
                    let odd = (x * 7 + y * 13) % 120 == 0 || (d == bad && y % 20 == 10);
                    img.put_pixel(x, y, if odd { Rgb([0, 0, 0]) } else { Rgb(colour) });
                }
            }
            let (rows, allowed) = (5..h - 3, (h - 8) as usize * OUTLIERS_PER_MILLE / 1000);
            let column_ok = |x: u32| rows.clone().filter(|&y| differs(&img.get_pixel(x, y).0, colour)).count() <= allowed;
            let (x0, x1) = (0u32, w);
            let mut want_left = 0;
            while x1 - x0 - want_left > 2 && column_ok(x0 + want_left) {
                want_left += 1;
            }
            let mut want_right = 0;
            while x1 - x0 - want_right > 2 && column_ok(x1 - 1 - want_right) {
                want_right += 1;
            }
            assert_eq!(border_cols(&img, x0, x1, rows.clone(), colour, false), want_left, "left {left} {bad}");
            assert_eq!(border_cols(&img, x0, x1, rows.clone(), colour, true), want_right, "right {right} {bad}");
        }
    }

    #[test]
    fn leaves_uniform_images_gradients_and_thin_content_alone() {
        let flat = RgbImage::from_pixel(50, 40, Rgb([7, 7, 7]));
        assert_eq!(content_rect(&flat), (0, 0, 50, 40));
        let sliver = framed(&noise(4, 4), 60, [255, 255, 255]);
        assert_eq!(content_rect(&sliver), (0, 0, sliver.width(), sliver.height()));
        // A border on one side only (a caption bar) leaves the corners disagreeing: kept.
        let mut bar = noise(60, 80);
        image::imageops::replace(&mut bar, &RgbImage::from_pixel(60, 10, Rgb([0, 0, 0])), 0, 70);
        assert_eq!(content_rect(&bar), (0, 0, 60, 80));
    }
}
