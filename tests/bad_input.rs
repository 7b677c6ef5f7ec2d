//! Hostile and unusual inputs: each bad file becomes exactly one failure row with a specific
//! reason, legal-but-unusual formats decode correctly, the run goes on, and a header that
//! claims 100000×100000 pixels is refused before any pixel buffer is allocated.

#![allow(unsafe_code)] // the counting allocator below; nothing else here is unsafe

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Cursor;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use image::{DynamicImage, ImageBuffer, Rgb, RgbImage, Rgba};
use tusk::decode::{decode, DecodeLimits};

/// Counts live and peak heap bytes so a test can prove an allocation never happened.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn encode(img: &DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let red = ImageBuffer::from_pixel(16, 8, Rgba([255u8, 0, 0, 255]));
        let blue = ImageBuffer::from_pixel(16, 8, Rgba([0u8, 0, 255, 255]));
        enc.encode_frames(vec![image::Frame::new(red), image::Frame::new(blue)]).unwrap();
    }
    out
}

fn sixteen_bit_png() -> Vec<u8> {
    let img: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(40, 20, |x, _| Rgb([(x * 1600) as u16, 65535, 0]));
    encode(&DynamicImage::ImageRgb16(img), image::ImageFormat::Png)
}

fn demo_jpeg() -> Vec<u8> {
    std::fs::read(common::demo_dir().join("images/met_ivory_41975.jpg")).unwrap()
}

/// Writes every bad and unusual file into `dir`.
fn write_cases(dir: &Path) {
    let jpeg = demo_jpeg();
    std::fs::write(dir.join("truncated.jpg"), &jpeg[..jpeg.len() * 6 / 10]).unwrap();
    std::fs::write(dir.join("empty.jpg"), b"").unwrap();
    std::fs::write(dir.join("text.jpg"), b"this is a text file, not a photo\n").unwrap();
    std::fs::write(dir.join("huge.png"), common::png_claiming(100_000, 100_000)).unwrap();
    let mut corrupt = encode(&DynamicImage::ImageRgb8(RgbImage::new(64, 64)), image::ImageFormat::Png);
    let n = corrupt.len();
    corrupt[n / 2..n - 12].iter_mut().for_each(|b| *b = 0xA5);
    std::fs::write(dir.join("corrupt.png"), corrupt).unwrap();
    std::fs::copy(common::root().join("tests/fixtures/cmyk.jpg"), dir.join("cmyk.jpg")).unwrap();
    std::fs::write(dir.join("sixteen.png"), sixteen_bit_png()).unwrap();
    std::fs::write(dir.join("animated.gif"), animated_gif()).unwrap();
    std::fs::write(dir.join("good.jpg"), jpeg).unwrap();
}

#[test]
fn header_claiming_ten_gigapixels_is_refused_without_allocating() {
    let png = common::png_claiming(100_000, 100_000);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let err = decode(&png, &DecodeLimits::default()).unwrap_err();
    let grew = PEAK.load(Ordering::Relaxed) - before;
    assert_eq!(err.reason(), "too_large", "{err}");
    assert!(grew < 16 * 1024 * 1024, "decoder allocated {grew} bytes for a refused image");
}

#[test]
fn legal_unusual_formats_decode_to_the_right_pixels() {
    let limits = DecodeLimits::default();
    let cmyk = decode(&std::fs::read(common::root().join("tests/fixtures/cmyk.jpg")).unwrap(), &limits).unwrap();
    let (left, right) = (cmyk.rgb.get_pixel(5, 20).0, cmyk.rgb.get_pixel(58, 20).0);
    assert!(left[0] > 200 && left[1] < 60 && left[2] < 60, "CMYK red came out {left:?}");
    assert!(right[2] > 200 && right[0] < 60 && right[1] < 60, "CMYK blue came out {right:?}");

    let gif = decode(&animated_gif(), &limits).unwrap();
    assert_eq!(gif.rgb.get_pixel(3, 3).0, [255, 0, 0], "first frame of the animation");

    let sixteen = decode(&sixteen_bit_png(), &limits).unwrap();
    assert_eq!(sixteen.rgb.dimensions(), (40, 20));
    let p = sixteen.rgb.get_pixel(39, 0).0;
    assert_eq!(p[1], 255);
    assert!((p[0] as i32 - 39 * 1600 / 257).abs() <= 1, "16-bit red scaled to {}", p[0]);
}

#[test]
fn exif_orientation_is_applied() {
    // A 4×2 JPEG, half white half black, with an EXIF orientation of 6 (rotate 90° clockwise).
    let img = RgbImage::from_fn(40, 20, |x, _| if x < 20 { Rgb([255, 255, 255]) } else { Rgb([0, 0, 0]) });
    let jpeg = encode(&DynamicImage::ImageRgb8(img), image::ImageFormat::Jpeg);
    // APP1 Exif segment: TIFF little-endian header, one IFD entry 0x0112 (orientation) = 6.
    let mut tiff = b"II*\0\x08\0\0\0\x01\0\x12\x01\x03\0\x01\0\0\0\x06\0\0\0\0\0\0\0".to_vec();
    let mut app1 = b"Exif\0\0".to_vec();
    app1.append(&mut tiff);
    let mut with_exif = vec![0xFF, 0xD8, 0xFF, 0xE1];
    with_exif.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    with_exif.extend_from_slice(&app1);
    with_exif.extend_from_slice(&jpeg[2..]);
    let d = decode(&with_exif, &DecodeLimits::default()).unwrap();
    assert_eq!(d.rgb.dimensions(), (20, 40), "rotated to portrait");
    assert!(d.rgb.get_pixel(10, 5).0[0] > 200, "white on top after a clockwise turn");
    assert!(d.rgb.get_pixel(10, 35).0[0] < 50, "black at the bottom");
}

#[test]
fn each_bad_file_is_one_failure_row_and_the_run_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir(&images).unwrap();
    write_cases(&images);
    let outside = dir.path().join("outside.jpg");
    std::fs::write(&outside, demo_jpeg()).unwrap();
    std::os::unix::fs::symlink(&outside, images.join("link_out.jpg")).unwrap();
    let db = dir.path().join("t.db");
    let jsonl = dir.path().join("t.jsonl");

    let stdout = common::scan_ok(&images, &db, &["--jsonl", jsonl.to_str().unwrap()]);
    assert!(stdout.contains("4 processed"), "{stdout}");
    let expected = [
        ("truncated.jpg", "decode", "truncated"),
        ("empty.jpg", "decode", "empty_file"),
        ("text.jpg", "decode", "unknown_format"),
        ("huge.png", "decode", "too_large"),
        ("corrupt.png", "decode", "corrupt"),
        ("link_out.jpg", "source", "outside_root"),
    ];
    let check = |db: &Path| {
        for (file, stage, reason) in expected {
            let rows = common::pairs(
                db,
                &format!("SELECT stage, reason FROM failures WHERE uri LIKE '%/{file}'"),
            );
            assert_eq!(rows, vec![(stage.to_string(), reason.to_string())], "{file}");
        }
        assert_eq!(common::count(db, "SELECT COUNT(*) FROM failures"), expected.len() as i64);
        for file in ["cmyk.jpg", "sixteen.png", "animated.gif", "good.jpg"] {
            let n = common::count(db, &format!("SELECT COUNT(*) FROM objects WHERE uri LIKE '%/{file}'"));
            assert_eq!(n, 1, "{file} should have a result");
        }
        assert_eq!(common::count(db, "SELECT COUNT(*) FROM results"), 4);
    };
    check(&db);
    let lines = common::jsonl(&jsonl);
    assert_eq!(lines.len(), 10);
    let huge = lines.iter().find(|l| l["uri"].as_str().unwrap().ends_with("huge.png")).unwrap();
    assert_eq!(huge["failure"]["reason"], "too_large");
    assert!(huge["failure"]["message"].as_str().unwrap().contains("100000"));
    assert!(huge["scores"].as_object().unwrap().is_empty());

    // A rerun redoes nothing that is settled and never duplicates a failure row.
    let again = common::scan_ok(&images, &db, &[]);
    assert!(again.contains("0 processed") && again.contains("9 skipped"), "{again}");
    check(&db);
}

#[test]
fn missing_object_in_a_manifest_is_a_read_failure() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.jsonl");
    let good = common::demo_dir().join("images/met_ivory_41975.jpg");
    std::fs::write(
        &manifest,
        format!(
            "{{\"uri\":\"{}\",\"seller_id\":\"s1\"}}\n{{\"uri\":\"gone/missing.jpg\",\"seller_id\":\"s2\"}}\nnot json\n",
            good.display()
        ),
    )
    .unwrap();
    let db = dir.path().join("t.db");
    let stdout = common::scan_ok(&manifest, &db, &[]);
    assert!(stdout.contains("1 processed") && stdout.contains("2 failed"), "{stdout}");
    let rows = common::pairs(&db, "SELECT stage || '/' || reason, uri FROM failures ORDER BY uri");
    let mut reasons: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    reasons.sort_unstable();
    assert_eq!(reasons, vec!["read/not_found", "source/bad_manifest_line"], "{rows:?}");
}
