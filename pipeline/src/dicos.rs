//! DICOS (NEMA IIC 1, DICOM for security screening): what X-ray screening equipment exchanges.
//! [`read_dx`] reads a DX scan into the same 16-bit (or 8-bit) grey PNG a station would post,
//! so its detections are exactly those of posting the same pixels as a PNG;
//! [`threat_detection_report`] writes a record's verdict as a DICOS Threat Detection Report.
//!
//! Read: Part-10 files (with or without the 128-byte preamble before `DICM`) in Implicit or
//! Explicit VR Little Endian, DICOS or DICOM DX storage, MONOCHROME1/2, 8 or 16 bits allocated,
//! unsigned. A multi-frame object (high and low energy) is read from its first frame, the
//! high-energy image by tusk's convention. Not read: compressed or big-endian transfer syntaxes,
//! CT volumes and other IODs, colour, signed pixels.

use std::io::Cursor;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{InMemDicomObject, OpenFileOptions};
use sha2::{Digest, Sha256};

use crate::decode::{DecodeError, DecodeLimits};
use crate::record::Record;

/// The media type of DICOS objects on the wire (as of DICOM).
pub const MEDIA_TYPE: &str = "application/dicom";

/// SOP classes read as X-ray scans: DICOS DX (for presentation, for processing) and DICOM DX.
const DX_SOP_CLASSES: [&str; 4] = [
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
];

/// Why bytes are not a usable DICOS scan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DicosError {
    /// Not a well-formed DICOM Part-10 object, or a DX without the attributes a scan needs.
    #[error("malformed DICOS: {0}")]
    Malformed(String),
    /// A well-formed object tusk does not read (compressed pixel data, CT, colour, …).
    #[error("unsupported DICOS: {0}")]
    Unsupported(String),
    /// Beyond the decoder limits: the image decoder's own reasons (`too_large`, …).
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl DicosError {
    /// The stable reason code for failure records and API errors.
    pub fn reason(&self) -> &'static str {
        match self {
            DicosError::Malformed(_) => "dicos_malformed",
            DicosError::Unsupported(_) => "dicos_unsupported",
            DicosError::Decode(e) => e.reason(),
        }
    }
}

fn malformed(message: impl Into<String>) -> DicosError {
    DicosError::Malformed(message.into())
}

fn unsupported(message: impl Into<String>) -> DicosError {
    DicosError::Unsupported(message.into())
}

/// What a Threat Detection Report needs to know about the DX it reports on, and the scan's
/// context for the record (station, parcel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DxMeta {
    /// SOP Class UID of the DX (DICOS or DICOM DX storage).
    pub sop_class_uid: String,
    /// SOP Instance UID of the DX: the TDR's threats point at it.
    pub sop_instance_uid: String,
    /// Study Instance UID, when given: the TDR joins the same study (scan).
    pub study_instance_uid: Option<String>,
    /// Patient ID, DICOS's Object of Inspection ID: the parcel or bag.
    pub patient_id: Option<String>,
    /// Patient's Name (the OOI owner's), copied into the report.
    pub patient_name: Option<String>,
    /// OOI Type (BAGGAGE, CARGO, …), copied into the report.
    pub ooi_type: Option<String>,
    /// Station Name: the screening machine.
    pub station_name: Option<String>,
    /// Number of Frames (1 when absent); frame 1 is the one read.
    pub frames: u32,
}

/// A DX scan as tusk consumes it.
#[derive(Debug, Clone)]
pub struct DxScan {
    /// The first frame as a grey PNG (16-bit, or 8-bit for 8-bit pixels): the bytes the scan
    /// path decodes, and what the review overlay is drawn on.
    pub png: Vec<u8>,
    /// The object's identity and context.
    pub meta: DxMeta,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Value representations with a 4-byte length in explicit VR encodings.
fn long_vr(vr: &[u8]) -> bool {
    matches!(vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

/// Value representations with a 2-byte length in explicit VR encodings. Any VR in neither
/// list is refused: dicom-parser reads an unknown VR as UN, with a 4-byte length, so a check
/// that took it as short would let that length through unchecked (found by fuzzing).
fn short_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE" | b"AS" | b"AT" | b"CS" | b"DA" | b"DS" | b"DT" | b"FL" | b"FD" | b"IS" | b"LO" | b"LT" | b"PN" | b"SH" | b"SL" | b"SS" | b"ST" | b"TM" | b"UI" | b"UL" | b"US"
    )
}

/// The size of one value of a fixed-size binary VR (1 for text and bytes). dicom-parser reads
/// `length / size` whole values of such an element but counts its whole length as read, so a
/// length that is not a multiple of the size would shift every header after it (found by
/// fuzzing: a 10-byte SL made the parser read a 1.4 GB length out of the next element's value).
fn value_size(vr: VR) -> u32 {
    match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::UL | VR::SL | VR::FL | VR::OL | VR::OF => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    }
}

/// The VR an implicit-VR data set's element is read with: the dictionary's, the wider choice
/// where it names two (US or SS, OB or OW); UN when unknown.
fn implicit_vr(tag: Tag) -> VR {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    match dicom_dictionary_std::StandardDataDictionary.by_tag(tag).map(|e| e.vr()) {
        Some(VirtualVr::Exact(vr)) => vr,
        Some(VirtualVr::Xs | VirtualVr::Lt) => VR::US,
        Some(VirtualVr::Ox | VirtualVr::Px) => VR::OW,
        _ => VR::UN,
    }
}

/// The error for an element whose VR is not a DICOM one.
fn unknown_vr(tag: Tag, vr: &[u8]) -> DicosError {
    malformed(format!("element {tag} has an unknown value representation {:?}", String::from_utf8_lossy(vr)))
}

/// Whether the standard dictionary makes `tag` a sequence (implicit VR data sets name no VR).
fn is_sequence(tag: Tag) -> bool {
    use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
    dicom_dictionary_std::StandardDataDictionary.by_tag(tag).is_some_and(|e| matches!(e.vr(), VirtualVr::Exact(VR::SQ)))
}

/// Sequences nested deeper than this are refused (real DICOS objects nest a few levels).
const MAX_DEPTH: usize = 32;

/// The item tag, and the item and sequence delimiters.
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);

/// What dicom-parser expects next inside an open container: data elements (the data set, or
/// an item's), or items (a sequence's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Elements,
    Items,
}

/// Checks every element length in `data` (little endian, explicit or implicit VR) against the
/// bytes of the container that holds it, walking the grammar dicom-parser walks: data elements
/// where it reads data elements, items where it reads items, each length inside its sequence's
/// or item's. dicom-object's parser reserves (and zeroes) an element's announced length before
/// reading it, so a length it reads that this walk did not check could make a few hundred
/// hostile bytes take gigabytes; the walk therefore refuses whatever the parser would read in
/// another way than it does (an item tag among data elements, which the parser reads as a
/// value; an undefined length on anything but a sequence; encapsulated pixel data).
fn check_lengths(data: &[u8], explicit: bool) -> Result<(), DicosError> {
    // Open containers: what they hold, and where they end (None: at their delimiter).
    let mut open: Vec<(Expect, Option<usize>)> = vec![(Expect::Elements, Some(data.len()))];
    let mut pos = 0usize;
    loop {
        if open.len() > MAX_DEPTH {
            return Err(malformed(format!("sequences nested deeper than {}", MAX_DEPTH / 2)));
        }
        let (expect, end) = *open.last().expect("the data set stays open");
        if let Some(end) = end {
            if pos == end {
                open.pop();
                if open.is_empty() {
                    return Ok(());
                }
                continue;
            }
        }
        let limit = end.unwrap_or(data.len());
        let rest = limit - pos;
        if rest < 8 {
            return Err(malformed(if pos == data.len() { "the data ends inside a sequence or item".to_string() } else { format!("{rest} stray bytes at the end of a sequence, item or the data set") }));
        }
        let tag = Tag(u16_at(data, pos), u16_at(data, pos + 2));
        let item_len = u32_at(data, pos + 4);
        if expect == Expect::Items {
            pos += 8;
            match tag {
                ITEM if item_len == u32::MAX => open.push((Expect::Elements, None)),
                ITEM if item_len as usize <= rest - 8 => open.push((Expect::Elements, Some(pos + item_len as usize))),
                ITEM => return Err(malformed(format!("an item announces {item_len} bytes but {} follow in its sequence", rest - 8))),
                SEQUENCE_END if end.is_none() => {
                    open.pop();
                }
                other => return Err(malformed(format!("element {other} where a sequence item belongs"))),
            }
            continue;
        }
        if tag.0 == 0xFFFE {
            // Among data elements only an undefined-length item's end belongs.
            if tag == ITEM_END && end.is_none() && open.len() > 1 {
                open.pop();
                pos += 8;
                continue;
            }
            return Err(malformed(format!("{tag} among data elements")));
        }
        let (header, len, sequence, vr) = if explicit {
            let vr = &data[pos + 4..pos + 6];
            let named = VR::from_binary([vr[0], vr[1]]).unwrap_or(VR::UN);
            if long_vr(vr) {
                if rest < 12 {
                    return Err(malformed(format!("element {tag} is cut off")));
                }
                let len = u32_at(data, pos + 8);
                // dicom-parser reads an undefined-length UN (or any element) as a sequence.
                (12, len, vr == b"SQ" || (vr == b"UN" && len == u32::MAX), named)
            } else if short_vr(vr) {
                (8, u32::from(u16_at(data, pos + 6)), false, named)
            } else {
                return Err(unknown_vr(tag, vr));
            }
        } else {
            // An undefined length only where the dictionary makes the element a sequence:
            // dicom-parser reads any other element's as a value length (4 GiB; found by fuzzing).
            (8, item_len, is_sequence(tag), implicit_vr(tag))
        };
        if !sequence && len != u32::MAX && len % value_size(vr) != 0 {
            return Err(malformed(format!("element {tag} ({vr:?}) has {len} bytes, not a whole number of {}-byte values", value_size(vr))));
        }
        pos += header;
        if len == u32::MAX && tag == tags::PIXEL_DATA {
            return Err(malformed("encapsulated (undefined-length) pixel data"));
        }
        if len != u32::MAX && len as usize > limit - pos {
            return Err(malformed(format!("element {tag} announces {len} bytes but {} follow", limit - pos)));
        }
        match (sequence, len) {
            (true, u32::MAX) => open.push((Expect::Items, None)),
            (true, len) => open.push((Expect::Items, Some(pos + len as usize))),
            (false, u32::MAX) => return Err(malformed(format!("element {tag} has an undefined length"))),
            (false, len) => pos += len as usize,
        }
    }
}

/// The file meta group starting at `at` (just after `DICM`), its lengths checked as in
/// [`check_lengths`]: where the data set starts, and the transfer syntax UID.
fn meta_group(bytes: &[u8], at: usize) -> Result<(usize, String), DicosError> {
    if bytes.len() < at + 12 || bytes[at..at + 6] != [0x02, 0x00, 0x00, 0x00, b'U', b'L'] {
        return Err(malformed("the file meta group does not start with its group length (0002,0000)"));
    }
    let start = at + 12;
    let end = start
        .checked_add(u32_at(bytes, at + 8) as usize)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(|| malformed("the file meta group is longer than the file"))?;
    let meta = &bytes[start..end];
    let mut ts = None;
    let mut pos = 0;
    while pos < meta.len() {
        let rest = meta.len() - pos;
        if rest < 8 {
            return Err(malformed("the file meta group ends inside an element"));
        }
        let tag = Tag(u16_at(meta, pos), u16_at(meta, pos + 2));
        if tag.0 != 0x0002 {
            return Err(malformed(format!("element {tag} inside the file meta group")));
        }
        let (header, len) = if long_vr(&meta[pos + 4..pos + 6]) {
            if rest < 12 {
                return Err(malformed("the file meta group ends inside an element"));
            }
            (12, u32_at(meta, pos + 8) as usize)
        } else if short_vr(&meta[pos + 4..pos + 6]) {
            (8, u16_at(meta, pos + 6) as usize)
        } else {
            return Err(unknown_vr(tag, &meta[pos + 4..pos + 6]));
        };
        if len > rest - header {
            return Err(malformed(format!("meta element {tag} announces {len} bytes but {} follow", rest - header)));
        }
        if tag == tags::TRANSFER_SYNTAX_UID {
            ts = Some(String::from_utf8_lossy(&meta[pos + header..pos + header + len]).trim_end_matches(['\0', ' ']).to_string());
        }
        pos += header + len;
    }
    Ok((end, ts.ok_or_else(|| malformed("no Transfer Syntax UID (0002,0010)"))?))
}

/// A text attribute, trimmed; `None` when absent or empty.
fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let v = obj.get(tag)?.to_str().ok()?;
    let v = v.trim_matches(['\0', ' ']);
    (!v.is_empty()).then(|| v.to_string())
}

/// An integer attribute the pixel data needs.
fn number(obj: &InMemDicomObject, tag: Tag, name: &str) -> Result<u32, DicosError> {
    let e = obj.get(tag).ok_or_else(|| malformed(format!("no {name} {tag}")))?;
    e.to_int::<u32>().map_err(|err| malformed(format!("{name} {tag}: {err}")))
}

/// Reads a DICOS/DICOM DX object from memory: checks it within `limits` before touching pixel
/// data, and returns its first frame as the grey PNG the scan path consumes. Stored values are
/// kept as they are (no modality or VOI LUT), as a 16-bit PNG keeps them; MONOCHROME1 is turned
/// into MONOCHROME2 (bright = high), and fewer bits stored than allocated are stretched to the
/// full 8 or 16 bits.
pub fn read_dx(bytes: &[u8], limits: &DecodeLimits) -> Result<DxScan, DicosError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty.into());
    }
    let magic = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        128
    } else if bytes.starts_with(b"DICM") {
        0
    } else {
        return Err(malformed("no DICM marker (at byte 0 or after a 128-byte preamble)"));
    };
    let (data_start, ts) = meta_group(bytes, magic + 4)?;
    let explicit = match ts.as_str() {
        uids::EXPLICIT_VR_LITTLE_ENDIAN => true,
        uids::IMPLICIT_VR_LITTLE_ENDIAN => false,
        other => return Err(unsupported(format!("transfer syntax {other}: only uncompressed Little Endian (Implicit or Explicit VR) is read"))),
    };
    check_lengths(&bytes[data_start..], explicit)?;
    let file = OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Never)
        .from_reader(&bytes[magic..])
        .map_err(|e| malformed(e.to_string()))?;
    let obj: &InMemDicomObject = &file;

    let sop_class_uid = text(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| file.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string());
    if sop_class_uid == uids::DICOSCT_IMAGE_STORAGE {
        return Err(unsupported("DICOS CT volumes are not read: post a DX (projection) image"));
    }
    if !DX_SOP_CLASSES.contains(&sop_class_uid.as_str()) {
        return Err(unsupported(format!("SOP class {sop_class_uid:?} is not a DX image (DICOS or DICOM Digital X-Ray storage)")));
    }
    let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID).ok_or_else(|| malformed("no SOP Instance UID (0008,0018)"))?;

    // The limits, from the header, before any pixel is looked at.
    let (width, height) = (number(obj, tags::COLUMNS, "Columns")?, number(obj, tags::ROWS, "Rows")?);
    if width > limits.max_width || height > limits.max_height {
        let limit = format!("--max-width {} / --max-height {}", limits.max_width, limits.max_height);
        return Err(DecodeError::TooLarge { width, height, limit }.into());
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(DecodeError::TooLarge { width, height, limit: format!("--max-pixels {}", limits.max_pixels) }.into());
    }
    if width == 0 || height == 0 {
        return Err(malformed(format!("{width}×{height} image")));
    }
    let samples = obj.get(tags::SAMPLES_PER_PIXEL).map_or(Ok(1), |_| number(obj, tags::SAMPLES_PER_PIXEL, "Samples per Pixel"))?;
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).ok_or_else(|| malformed("no Photometric Interpretation (0028,0004)"))?;
    if samples != 1 || !matches!(photometric.as_str(), "MONOCHROME1" | "MONOCHROME2") {
        return Err(unsupported(format!("{photometric} with {samples} samples per pixel: only MONOCHROME1/2 grey images are read")));
    }
    let allocated = number(obj, tags::BITS_ALLOCATED, "Bits Allocated")?;
    let stored = number(obj, tags::BITS_STORED, "Bits Stored")?;
    if !matches!(allocated, 8 | 16) || stored == 0 || stored > allocated {
        return Err(unsupported(format!("{stored} bits stored in {allocated} allocated: only 8 or 16 bits allocated are read")));
    }
    if obj.get(tags::HIGH_BIT).is_some() && number(obj, tags::HIGH_BIT, "High Bit")? != stored - 1 {
        return Err(unsupported("High Bit is not Bits Stored - 1"));
    }
    if obj.get(tags::PIXEL_REPRESENTATION).is_some() && number(obj, tags::PIXEL_REPRESENTATION, "Pixel Representation")? != 0 {
        return Err(unsupported("signed pixel values"));
    }
    if obj.get(tags::PIXEL_DATA).is_none() {
        return Err(malformed("no Pixel Data (7FE0,0010)"));
    }
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        Some(_) => number(obj, tags::NUMBER_OF_FRAMES, "Number of Frames")?.max(1),
        None => 1,
    };

    use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
    let decoded = file.decode_pixel_data().map_err(|e| malformed(format!("pixel data: {e}")))?;
    let raw: Vec<u16> = decoded
        .to_vec_frame_with_options(0, &ConvertOptions::new().with_modality_lut(ModalityLutOption::None))
        .map_err(|e| malformed(format!("pixel data of frame 1 (Rows × Columns × {allocated} bits): {e}")))?;
    if raw.len() != width as usize * height as usize {
        return Err(malformed(format!("frame 1 has {} values for {width}×{height} pixels", raw.len())));
    }
    let max_in = (1u64 << stored) - 1;
    let max_out = (1u64 << allocated) - 1;
    let invert = photometric == "MONOCHROME1";
    let to_output = |v: u16| {
        let v = u64::from(v) & max_in;
        let v = if invert { max_in - v } else { v };
        (v * max_out + max_in / 2) / max_in
    };
    let image = if allocated == 16 {
        let px: Vec<u16> = raw.into_iter().map(|v| to_output(v) as u16).collect();
        image::DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(width, height, px).ok_or_else(|| malformed("pixel buffer size"))?)
    } else {
        let px: Vec<u8> = raw.into_iter().map(|v| to_output(v) as u8).collect();
        image::DynamicImage::ImageLuma8(image::ImageBuffer::from_raw(width, height, px).ok_or_else(|| malformed("pixel buffer size"))?)
    };
    let mut png = Vec::new();
    let encoder = image::codecs::png::PngEncoder::new_with_quality(&mut png, image::codecs::png::CompressionType::Fast, image::codecs::png::FilterType::Adaptive);
    image.write_with_encoder(encoder).map_err(|e| malformed(format!("re-encoding the pixels: {e}")))?;

    let meta = DxMeta {
        sop_class_uid,
        sop_instance_uid,
        study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME),
        ooi_type: text(obj, tags::OOI_TYPE),
        station_name: text(obj, tags::STATION_NAME),
        frames,
    };
    Ok(DxScan { png, meta })
}

/// A DICOM UID derived from `parts`: `2.25.` and a UUID (version 8, from SHA-256), so the same
/// inputs always name the same instance and different ones never collide.
pub fn derived_uid(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(b"tusk dicos uid");
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0F) | 0x80; // version 8: custom (here SHA-256 based)
    uuid[8] = (uuid[8] & 0x3F) | 0x80; // RFC 9562 variant
    format!("2.25.{}", u128::from_be_bytes(uuid))
}

/// What a report says besides the record: where the verdict came from.
#[derive(Debug, Clone)]
pub struct ReportContext<'a> {
    /// The DX the verdict is about; `None` for a scan posted as an image (no instance to point at).
    pub source: Option<&'a DxMeta>,
    /// Threat Detection Algorithm and Version values: the program, its version, the models.
    pub algorithm: Vec<String>,
    /// What the report's UIDs derive from (the scan's SHA-256 and the model versions): the same
    /// scan judged by the same models gets the same SOP Instance UID.
    pub seed: String,
    /// The parcel (OOI ID) when the DX names none.
    pub parcel: Option<String>,
    /// When the decision was made.
    pub decided_at: std::time::SystemTime,
}

/// UTC `(YYYYMMDD, HHMMSS.ffffff)` of a time (DICOM DA and TM).
fn utc_date_time(t: std::time::SystemTime) -> (String, String) {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let (days, secs) = ((d.as_secs() / 86_400) as i64, d.as_secs() % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let time = format!("{:02}{:02}{:02}.{:06}", secs / 3600, secs / 60 % 60, secs % 60, d.subsec_micros());
    (date, time)
}

fn el(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value.into())
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// Longest LO value.
fn lo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// The record's verdict as a DICOS Threat Detection Report (DICOM Part-10 bytes, Explicit VR
/// Little Endian): a MACHINE report, ALARM when the record is flagged and CLEAR otherwise, one
/// potential threat object per flagged detection (category CONTRABAND, the label as its
/// description, the score as its probability, the box as a bounding polygon on the DX).
pub fn threat_detection_report(record: &Record, ctx: &ReportContext<'_>) -> Result<Vec<u8>, String> {
    let instance_uid = derived_uid(&["tdr", &ctx.seed]);
    let series_uid = derived_uid(&["tdr series", &ctx.seed]);
    let study_uid = ctx.source.and_then(|s| s.study_instance_uid.clone()).unwrap_or_else(|| derived_uid(&["study", &ctx.seed]));
    let (date, time) = utc_date_time(ctx.decided_at);
    let threats: Vec<_> = record.detections.iter().filter(|d| d.flagged).collect();
    let count = u16::try_from(threats.len()).map_err(|_| format!("{} threats do not fit a report", threats.len()))?;

    let mut obj = InMemDicomObject::new_empty();
    obj.put(el(tags::SOP_CLASS_UID, VR::UI, uids::DICOS_THREAT_DETECTION_REPORT_STORAGE));
    obj.put(el(tags::SOP_INSTANCE_UID, VR::UI, instance_uid.as_str()));
    obj.put(el(tags::CONTENT_DATE, VR::DA, date.as_str()));
    obj.put(el(tags::CONTENT_TIME, VR::TM, time.as_str()));
    obj.put(el(tags::MODALITY, VR::CS, "TDR"));
    obj.put(el(tags::MANUFACTURER, VR::LO, "tusk"));
    obj.put(el(tags::SOFTWARE_VERSIONS, VR::LO, lo(&format!("tusk {}", env!("CARGO_PKG_VERSION")))));
    if let Some(station) = ctx.source.and_then(|s| s.station_name.as_deref()) {
        obj.put(el(tags::STATION_NAME, VR::SH, station.chars().take(16).collect::<String>()));
    }
    obj.put(el(tags::PATIENT_NAME, VR::PN, ctx.source.and_then(|s| s.patient_name.clone()).unwrap_or_default()));
    let ooi_id = ctx.source.and_then(|s| s.patient_id.clone()).or_else(|| ctx.parcel.clone()).unwrap_or_default();
    obj.put(el(tags::PATIENT_ID, VR::LO, lo(&ooi_id)));
    obj.put(el(tags::STUDY_INSTANCE_UID, VR::UI, study_uid.as_str()));
    obj.put(el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()));
    obj.put(el(tags::INSTANCE_NUMBER, VR::IS, "1"));
    if let Some(ooi_type) = ctx.source.and_then(|s| s.ooi_type.as_deref()) {
        obj.put(el(tags::OOI_TYPE, VR::CS, ooi_type));
    }
    obj.put(el(tags::ABORT_FLAG, VR::CS, "SUCCESS"));
    obj.put(el(tags::TDR_TYPE, VR::CS, "MACHINE"));
    let algorithm: Vec<String> = ctx.algorithm.iter().map(|a| lo(a)).collect();
    obj.put(el(tags::THREAT_DETECTION_ALGORITHM_AND_VERSION, VR::LO, PrimitiveValue::Strs(algorithm.into())));
    obj.put(el(tags::ALARM_DECISION_TIME, VR::DT, format!("{date}{time}+0000")));
    obj.put(el(tags::ALARM_DECISION, VR::CS, if record.flagged() { "ALARM" } else { "CLEAR" }));
    obj.put(el(tags::NUMBER_OF_TOTAL_OBJECTS, VR::US, count));
    obj.put(el(tags::NUMBER_OF_ALARM_OBJECTS, VR::US, count));

    let mut items = Vec::with_capacity(threats.len());
    for (i, d) in threats.iter().enumerate() {
        let assessment = InMemDicomObject::from_element_iter([
            el(tags::THREAT_CATEGORY, VR::CS, "CONTRABAND"),
            el(tags::THREAT_CATEGORY_DESCRIPTION, VR::LT, d.label.as_str()),
            el(tags::ATD_ABILITY_ASSESSMENT, VR::CS, "NO_INTERFERENCE"),
            el(tags::ATD_ASSESSMENT_FLAG, VR::CS, "THREAT"),
            el(tags::ATD_ASSESSMENT_PROBABILITY, VR::FL, d.score),
        ]);
        let mut representation = InMemDicomObject::new_empty();
        if let Some(src) = ctx.source {
            let mut reference = InMemDicomObject::from_element_iter([
                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, src.sop_class_uid.as_str()),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, src.sop_instance_uid.as_str()),
            ]);
            if src.frames > 1 {
                reference.put(el(tags::REFERENCED_FRAME_NUMBER, VR::IS, "1"));
            }
            representation.put(seq(tags::REFERENCED_INSTANCE_SEQUENCE, vec![reference]));
        }
        if let Some([x0, y0, x1, y1]) = d.bbox {
            // Two corners (x, y, z): top left and bottom right, in pixels of the DX; z = 0.
            representation.put(el(tags::BOUNDING_POLYGON, VR::FL, [x0, y0, 0.0, x1, y1, 0.0]));
        }
        let mut item = InMemDicomObject::new_empty();
        item.put(el(tags::POTENTIAL_THREAT_OBJECT_ID, VR::US, i as u16));
        item.put(seq(tags::ATD_ASSESSMENT_SEQUENCE, vec![assessment]));
        item.put(seq(tags::PTO_REPRESENTATION_SEQUENCE, vec![representation]));
        items.push(item);
    }
    if !items.is_empty() {
        obj.put(seq(tags::THREAT_SEQUENCE, items));
    }

    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(derived_uid(&["tusk implementation"]))
                .implementation_version_name(format!("TUSK_{}", env!("CARGO_PKG_VERSION")).chars().take(16).collect::<String>()),
        )
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    file.write_all(Cursor::new(&mut out)).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DX object built with dicom-object (the pydicom-written ones are in tests/dicos.rs).
    fn dx(rows: u16, cols: u16, bits: u16, stored: u16, photometric: &str, pixels: PrimitiveValue, ts: &str) -> Vec<u8> {
        let obj = InMemDicomObject::from_element_iter([
            el(tags::SOP_CLASS_UID, VR::UI, uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING),
            el(tags::SOP_INSTANCE_UID, VR::UI, "1.2.3.4"),
            el(tags::MODALITY, VR::CS, "DX"),
            el(tags::PATIENT_ID, VR::LO, "parcel-7"),
            el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
            el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, photometric),
            el(tags::ROWS, VR::US, rows),
            el(tags::COLUMNS, VR::US, cols),
            el(tags::BITS_ALLOCATED, VR::US, bits),
            el(tags::BITS_STORED, VR::US, stored),
            el(tags::HIGH_BIT, VR::US, stored - 1),
            el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
            el(tags::PIXEL_DATA, if bits == 8 { VR::OB } else { VR::OW }, pixels),
        ]);
        let file = obj.with_meta(FileMetaTableBuilder::new().transfer_syntax(ts)).unwrap();
        let mut out = Vec::new();
        file.write_all(&mut out).unwrap();
        out
    }

    fn grey16(png: &[u8]) -> Vec<u16> {
        image::load_from_memory(png).unwrap().into_luma16().into_raw()
    }

    #[test]
    fn sixteen_bit_values_are_kept_and_monochrome1_is_inverted() {
        let values = vec![0u16, 1, 1000, 65535, 40000, 7];
        let bytes = dx(2, 3, 16, 16, "MONOCHROME2", PrimitiveValue::U16(values.clone().into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let scan = read_dx(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(grey16(&scan.png), values);
        assert_eq!(scan.meta.sop_instance_uid, "1.2.3.4");
        assert_eq!(scan.meta.patient_id.as_deref(), Some("parcel-7"));
        // Without the preamble too, and MONOCHROME1 read as bright = high.
        let bytes = dx(2, 3, 16, 16, "MONOCHROME1", PrimitiveValue::U16(values.clone().into()), uids::IMPLICIT_VR_LITTLE_ENDIAN);
        let scan = read_dx(&bytes[128..], &DecodeLimits::default()).unwrap();
        assert_eq!(grey16(&scan.png), values.iter().map(|v| 65535 - v).collect::<Vec<_>>());
    }

    #[test]
    fn fewer_bits_stored_are_stretched_and_eight_bit_stays_eight_bit() {
        let bytes = dx(1, 3, 16, 12, "MONOCHROME2", PrimitiveValue::U16(vec![0u16, 4095, 2048].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(grey16(&read_dx(&bytes, &DecodeLimits::default()).unwrap().png), vec![0, 65535, 32776]);
        let bytes = dx(1, 4, 8, 8, "MONOCHROME2", PrimitiveValue::U8(vec![0u8, 9, 200, 255].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let png = read_dx(&bytes, &DecodeLimits::default()).unwrap().png;
        let img = image::load_from_memory(&png).unwrap();
        assert!(matches!(img, image::DynamicImage::ImageLuma8(_)));
        assert_eq!(img.into_luma8().into_raw(), vec![0, 9, 200, 255]);
    }

    #[test]
    fn bad_objects_get_stable_reasons() {
        let limits = DecodeLimits::default();
        let good = dx(2, 2, 16, 16, "MONOCHROME2", PrimitiveValue::U16(vec![1u16, 2, 3, 4].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        let reason = |b: &[u8]| read_dx(b, &limits).unwrap_err().reason();
        assert_eq!(reason(b"not dicom at all"), "dicos_malformed");
        assert_eq!(reason(&good[..good.len() - 3]), "dicos_malformed");
        let bomb = dx(60_000, 60_000, 16, 16, "MONOCHROME2", PrimitiveValue::U16(vec![1u16; 4].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(reason(&bomb), "too_large");
        let colour = dx(2, 2, 16, 16, "RGB", PrimitiveValue::U16(vec![1u16; 4].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert_eq!(reason(&colour), "dicos_unsupported");
        // An element announcing 4 GiB in a small file is refused before anything reserves it.
        let pos = good.windows(4).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00]).unwrap();
        let mut lying = good.clone();
        lying[pos + 8..pos + 12].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
        assert_eq!(reason(&lying), "dicos_malformed");
    }

    #[test]
    fn the_length_walk_refuses_what_the_parser_would_read_another_way() {
        let limits = DecodeLimits::default();
        let good = dx(2, 2, 16, 16, "MONOCHROME2", PrimitiveValue::U16(vec![1u16, 2, 3, 4].into()), uids::EXPLICIT_VR_LITTLE_ENDIAN);
        assert!(read_dx(&good, &limits).is_ok());
        let pixels = good.windows(4).rposition(|w| w == [0xE0, 0x7F, 0x10, 0x00]).unwrap();
        let with = |bytes: &[u8]| {
            let mut b = good[..pixels].to_vec();
            b.extend_from_slice(bytes);
            b.extend_from_slice(&good[pixels..]);
            read_dx(&b, &limits).map(|_| ()).map_err(|e| e.to_string())
        };
        // An item among data elements: dicom-parser reads it as one value of its length, so
        // what it holds would not be walked the way the parser reads it.
        let err = with(&[0xFE, 0xFF, 0x00, 0xE0, 4, 0, 0, 0, 1, 2, 3, 4]).unwrap_err();
        assert!(err.contains("among data elements"), "{err}");
        // A sequence holding a data element where an item belongs.
        let err = with(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 8, 0, 0, 0, 0x08, 0x00, 0x50, 0x11, b'U', b'I', 0, 0]).unwrap_err();
        assert!(err.contains("where a sequence item belongs"), "{err}");
        // An item longer than its sequence.
        let err = with(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 8, 0, 0, 0, 0xFE, 0xFF, 0x00, 0xE0, 16, 0, 0, 0]).unwrap_err();
        assert!(err.contains("follow in its sequence"), "{err}");
        // A well-formed sequence (one empty item, undefined lengths, delimiters) is read.
        let seq = [0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x0D, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        assert_eq!(with(&seq), Ok(()));
        // Sequences nested without end are refused before the parser recurses into them.
        let mut deep = Vec::new();
        for _ in 0..40 {
            deep.extend_from_slice(&[0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
        }
        let err = with(&deep).unwrap_err();
        assert!(err.contains("nested deeper"), "{err}");
    }

    #[test]
    fn derived_uids_are_stable_valid_and_distinct() {
        let a = derived_uid(&["tdr", "abc"]);
        assert_eq!(a, derived_uid(&["tdr", "abc"]));
        assert_ne!(a, derived_uid(&["tdr", "abd"]));
        assert!(a.starts_with("2.25.") && a.len() <= 64 && a[5..].bytes().all(|b| b.is_ascii_digit()), "{a}");
    }

    #[test]
    fn dates_are_utc_civil_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(utc_date_time(t), ("20000229".to_string(), "010101.000000".to_string()));
    }
}
