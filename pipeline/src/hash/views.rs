//! Parts of a picture that are hashed on their own, so that re-posts which show the photo inside
//! other pixels, or cropped, still become match candidates: the photo cut out of a phone
//! screenshot, a frame or a collage (the tallest band of textured blocks), and centre crops of
//! that photo (a re-post cropped by up to 10 % per side hashes close to one of them).

use image::GrayImage;

/// Blocks along the longest side of the grid that [`photo_rect`] inspects.
const GRID: u32 = 96;
/// A block is textured when the standard deviation of its grey levels reaches this.
const TEXTURE_STD: f32 = 4.0;
/// A cut-out smaller than this share of the picture is not trusted as the photo.
const MIN_AREA: f32 = 0.12;
/// A cut-out larger than this share is the whole picture, not a photo inside chrome.
const MAX_AREA: f32 = 0.85;
/// Shortest side of a trusted cut-out, in pixels.
const MIN_SIDE: u32 = 32;

/// Shares of each side that the centre views remove ([`centre_crop`]).
pub const CENTRE_SHARES: [f32; 2] = [0.05, 0.10];

/// The photo inside a screenshot, frame or collage: `[x0, y0, x1, y1]` in `grey`'s pixels, or
/// `None` when the textured part is (nearly) the whole picture or implausibly small.
///
/// The picture is cut into square blocks; a block row is "on" when any of its blocks is
/// textured. Runs of on rows separated by flat rows are bands (app bars, text lines, the photo);
/// the tallest band is the photo, spanning the columns from its first to its last textured block.
pub fn photo_rect(grey: &GrayImage) -> Option<[u32; 4]> {
    let (w, h) = grey.dimensions();
    let b = (w.max(h) / GRID).max(2);
    let (gw, gh) = (w / b, h / b);
    if gw < 4 || gh < 4 {
        return None;
    }
    let textured = block_texture(grey, b, gw, gh);
    let on: Vec<bool> = (0..gh as usize).map(|r| textured[r * gw as usize..(r + 1) * gw as usize].iter().any(|&t| t)).collect();
    let (mut best, mut start) = (None::<(usize, usize)>, None::<usize>);
    for r in 0..=on.len() {
        match (start, on.get(r).copied().unwrap_or(false)) {
            (None, true) => start = Some(r),
            (Some(s), false) => {
                if best.is_none_or(|(b0, b1)| r - s > b1 - b0) {
                    best = Some((s, r));
                }
                start = None;
            }
            _ => {}
        }
    }
    let (r0, r1) = best?;
    let col_on = |c: usize| (r0..r1).any(|r| textured[r * gw as usize + c]);
    let c0 = (0..gw as usize).find(|&c| col_on(c))?;
    let c1 = (0..gw as usize).rev().find(|&c| col_on(c))? + 1;
    let rect = [c0 as u32 * b, r0 as u32 * b, (c1 as u32 * b).min(w), (r1 as u32 * b).min(h)];
    let (rw, rh) = (rect[2] - rect[0], rect[3] - rect[1]);
    let share = (rw * rh) as f32 / (w * h) as f32;
    ((MIN_AREA..=MAX_AREA).contains(&share) && rw.min(rh) >= MIN_SIDE).then_some(rect)
}

/// Whether each `b`×`b` block of the `gw`×`gh` grid is textured, row by row.
fn block_texture(grey: &GrayImage, b: u32, gw: u32, gh: u32) -> Vec<bool> {
    let mut sums = vec![(0f64, 0f64); (gw * gh) as usize];
    let w = grey.width() as usize;
    let raw = grey.as_raw();
    for y in 0..(gh * b) as usize {
        let row = &raw[y * w..y * w + (gw * b) as usize];
        let base = (y / b as usize) * gw as usize;
        for (bx, chunk) in row.chunks_exact(b as usize).enumerate() {
            let s = &mut sums[base + bx];
            for &v in chunk {
                let v = v as f64;
                s.0 += v;
                s.1 += v * v;
            }
        }
    }
    let n = (b * b) as f64;
    sums.into_iter()
        .map(|(s, s2)| {
            let mean = s / n;
            ((s2 / n - mean * mean).max(0.0).sqrt() as f32) >= TEXTURE_STD
        })
        .collect()
}

/// `rect` with `share` of its width and of its height removed from each side.
pub fn centre_crop(rect: [u32; 4], share: f32) -> [u32; 4] {
    let dx = ((rect[2] - rect[0]) as f32 * share).round() as u32;
    let dy = ((rect[3] - rect[1]) as f32 * share).round() as u32;
    [rect[0] + dx, rect[1] + dy, rect[2] - dx, rect[3] - dy]
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Luma;

    /// A noisy photo pasted into a flat phone screen with a dark bar and two lines of "text".
    fn screenshot() -> (GrayImage, [u32; 4]) {
        let mut img = GrayImage::from_pixel(360, 740, Luma([250]));
        for y in 0..24 {
            for x in 0..360 {
                img.put_pixel(x, y, Luma([20]));
            }
        }
        let mut s = 12345u32;
        for y in 75..345 {
            for x in 0..360 {
                s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
                img.put_pixel(x, y, Luma([((x + y) % 200) as u8 + (s >> 28) as u8]));
            }
        }
        for (top, len) in [(370, 300), (420, 120)] {
            for y in top..top + 16 {
                for x in (12..12 + len).step_by(3) {
                    img.put_pixel(x, y, Luma([10]));
                }
            }
        }
        (img, [0, 75, 360, 345])
    }

    #[test]
    fn the_photo_is_cut_out_of_a_screenshot() {
        let (img, photo) = screenshot();
        let r = photo_rect(&img).expect("a cut-out");
        for i in 0..4 {
            assert!(r[i].abs_diff(photo[i]) <= 8, "{r:?} vs {photo:?}");
        }
    }

    #[test]
    fn a_plain_photo_and_a_flat_picture_have_no_cut_out() {
        let mut s = 7u32;
        let noisy = GrayImage::from_fn(300, 200, |x, y| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12345);
            Luma([((x * 3 + y) % 256) as u8 ^ (s >> 27) as u8])
        });
        assert_eq!(photo_rect(&noisy), None);
        assert_eq!(photo_rect(&GrayImage::from_pixel(300, 200, Luma([128]))), None);
    }

    #[test]
    fn centre_crop_removes_a_share_of_each_side() {
        assert_eq!(centre_crop([0, 0, 200, 100], 0.1), [20, 10, 180, 90]);
    }
}
