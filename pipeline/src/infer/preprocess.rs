//! Turns a decoded RGB image into the model's input tensor, exactly as the training side
//! (Pillow + torchvision conventions) does: Pillow's bilinear resize (see `resample`), then
//! scale to 0..1, subtract the mean and divide by the standard deviation.

use image::RgbImage;

use super::manifest::{InputSpec, Layout, ResizeMode};
use super::resample::{resize_bilinear, resize_bilinear_window};

/// Number of f32 values one image occupies in the input tensor.
pub fn tensor_len(spec: &InputSpec) -> usize {
    3 * spec.width as usize * spec.height as usize
}

/// Python's `round()` of `n / 2` (half to even), which torchvision's CenterCrop uses.
fn half_round_even(n: u32) -> u32 {
    let (q, r) = (n / 2, n % 2);
    if r == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// Where the model input's pixels came from: the scale and offset that map input coordinates
/// back to the original image (used to place boxes; identity-free for classification).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Input pixels per original pixel, horizontally.
    pub scale_x: f32,
    /// Input pixels per original pixel, vertically.
    pub scale_y: f32,
    /// Left offset of the image inside the input, in input pixels (negative when cropped).
    pub left: f32,
    /// Top offset of the image inside the input, in input pixels (negative when cropped).
    pub top: f32,
}

/// Produces the input-sized RGB image the model sees.
pub fn fit(img: &RgbImage, spec: &InputSpec) -> (RgbImage, Placement) {
    let (w, h) = (img.width(), img.height());
    let (tw, th) = (spec.width, spec.height);
    match spec.resize {
        ResizeMode::Stretch => {
            let out = resize_bilinear(img, tw, th);
            let p = Placement {
                scale_x: tw as f32 / w as f32,
                scale_y: th as f32 / h as f32,
                left: 0.0,
                top: 0.0,
            };
            (out, p)
        }
        ResizeMode::CentreCrop => {
            // torchvision Resize(shorter): the long side is truncated, not rounded.
            let s = spec.resize_shorter.unwrap_or(tw.max(th));
            let (nw, nh) = if w <= h {
                (s, ((s as u64 * h as u64) / w as u64) as u32)
            } else {
                (((s as u64 * w as u64) / h as u64) as u32, s)
            };
            let left = half_round_even(nw.saturating_sub(tw));
            let top = half_round_even(nh.saturating_sub(th));
            let out = resize_bilinear_window(img, nw, nh, left, top, tw.min(nw), th.min(nh));
            let p = Placement {
                scale_x: nw as f32 / w as f32,
                scale_y: nh as f32 / h as f32,
                left: -(left as f32),
                top: -(top as f32),
            };
            (out, p)
        }
        ResizeMode::Letterbox => {
            let scale = (tw as f32 / w as f32).min(th as f32 / h as f32);
            let nw = ((w as f32 * scale).round() as u32).clamp(1, tw);
            let nh = ((h as f32 * scale).round() as u32).clamp(1, th);
            let resized = resize_bilinear(img, nw, nh);
            let (left, top) = ((tw - nw) / 2, (th - nh) / 2);
            let pad = spec.pad_value;
            let mut out = RgbImage::from_pixel(tw, th, image::Rgb([pad, pad, pad]));
            image::imageops::replace(&mut out, &resized, left as i64, top as i64);
            let p = Placement {
                scale_x: nw as f32 / w as f32,
                scale_y: nh as f32 / h as f32,
                left: left as f32,
                top: top as f32,
            };
            (out, p)
        }
    }
}

/// Writes the normalised tensor for one input-sized image into `out` (length `tensor_len`).
pub fn normalise_into(img: &RgbImage, spec: &InputSpec, out: &mut [f32]) {
    let plane = spec.width as usize * spec.height as usize;
    debug_assert_eq!(out.len(), 3 * plane);
    debug_assert_eq!(img.as_raw().len(), 3 * plane);
    // One lookup table per channel: the same f32 arithmetic as numpy's (x / 255 - mean) / std.
    let mut lut = [[0f32; 256]; 3];
    for (c, table) in lut.iter_mut().enumerate() {
        for (v, slot) in table.iter_mut().enumerate() {
            *slot = (v as f32 / 255.0 - spec.mean[c]) / spec.std[c];
        }
    }
    let raw = img.as_raw();
    match spec.layout {
        Layout::Nchw => {
            let (r, rest) = out.split_at_mut(plane);
            let (g, b) = rest.split_at_mut(plane);
            for (i, px) in raw.chunks_exact(3).enumerate() {
                r[i] = lut[0][px[0] as usize];
                g[i] = lut[1][px[1] as usize];
                b[i] = lut[2][px[2] as usize];
            }
        }
        Layout::Nhwc => {
            for (i, v) in raw.iter().enumerate() {
                out[i] = lut[i % 3][*v as usize];
            }
        }
    }
}

/// Resizes and normalises `img` for a model with input `spec`; returns the tensor data.
pub fn prepare(img: &RgbImage, spec: &InputSpec) -> (Vec<f32>, Placement) {
    let (fitted, placement) = fit(img, spec);
    let mut out = vec![0f32; tensor_len(spec)];
    normalise_into(&fitted, spec, &mut out);
    (out, placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_even_matches_python_round() {
        // Python: [round(n / 2) for n in range(8)] == [0, 0, 1, 2, 2, 2, 3, 4]
        let got: Vec<u32> = (0..8).map(half_round_even).collect();
        assert_eq!(got, vec![0, 0, 1, 2, 2, 2, 3, 4]);
    }

    fn spec(resize: ResizeMode) -> InputSpec {
        InputSpec {
            name: "x".into(),
            width: 4,
            height: 4,
            layout: Layout::Nchw,
            resize,
            resize_shorter: Some(4),
            pad_value: 114,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }

    #[test]
    fn letterbox_pads_with_pad_value_and_keeps_aspect() {
        let img = RgbImage::from_pixel(8, 4, image::Rgb([255, 0, 0]));
        let (out, p) = fit(&img, &spec(ResizeMode::Letterbox));
        assert_eq!((p.left, p.top, p.scale_x), (0.0, 1.0, 0.5));
        assert_eq!(out.get_pixel(0, 0).0, [114, 114, 114]);
        assert_eq!(out.get_pixel(0, 1).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(3, 3).0, [114, 114, 114]);
    }

    #[test]
    fn nchw_puts_channels_in_planes() {
        let img = RgbImage::from_pixel(4, 4, image::Rgb([255, 0, 51]));
        let (t, _) = prepare(&img, &spec(ResizeMode::Stretch));
        assert_eq!(t[0], 1.0);
        assert_eq!(t[16], 0.0);
        assert!((t[32] - 0.2).abs() < 1e-6);
    }
}
