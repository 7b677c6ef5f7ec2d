#!/usr/bin/env python3
"""Writes a DICOS Digital X-Ray (DX) object from a grey scan image with pydicom: the
independent writer `tests/dicos.rs` posts to `tusk serve`, so tusk's reader (dicom-rs) is tested
on files it did not write.

The image (PNG or TIFF, 8 or 16 bit grey, read with Pillow) becomes frame 1, the high-energy
image; with --frames 2 a second, different frame stands for the low-energy image, which tusk
must ignore. Pixel values are stored as they are (MONOCHROME2), or inverted with
--monochrome1 (the same picture as MONOCHROME1).

Hostile and unsupported variants for the error paths: --compressed (a JPEG Baseline transfer
syntax with encapsulated pixel data), --claim ROWSxCOLUMNS (a header claiming more pixels than
the data holds), --ct (a DICOS CT image instead of a DX).

Usage: .venv/bin/python scripts/dicos_dx.py SCAN.png OUT.dcs [--frames 2] [--monochrome1]
         [--implicit] [--no-preamble] [--compressed] [--claim 60000x60000] [--ct]
         [--station NAME] [--parcel ID] [--sop-instance-uid UID]
Prints the SOP Instance UID. Needs: pip install pydicom==3.0.2 pillow numpy (scripts/setup-python.sh)."""
import argparse, io, pathlib

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit,
                         generate_uid)

DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.501.2.2"  # DICOS Digital X-Ray Image Storage - For Processing
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.501.1"  # DICOS CT Image Storage


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("scan")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=1, choices=[1, 2])
    p.add_argument("--monochrome1", action="store_true")
    p.add_argument("--implicit", action="store_true")
    p.add_argument("--no-preamble", action="store_true")
    p.add_argument("--compressed", action="store_true")
    p.add_argument("--claim")
    p.add_argument("--ct", action="store_true")
    p.add_argument("--station")
    p.add_argument("--parcel")
    p.add_argument("--sop-instance-uid")
    a = p.parse_args()

    img = Image.open(a.scan)
    pixels = np.array(img)
    if pixels.ndim != 2:
        raise SystemExit(f"{a.scan}: not a grey image ({img.mode})")
    bits = 8 if pixels.dtype == np.uint8 else 16
    pixels = pixels.astype(np.uint8 if bits == 8 else np.uint16)
    top = (1 << bits) - 1
    frames = [pixels]
    if a.frames == 2:
        # The low-energy stand-in: another picture (flipped and darkened), never read.
        frames.append((pixels[::-1, ::-1] // 2).astype(pixels.dtype))
    if a.monochrome1:
        frames = [(top - f).astype(pixels.dtype) for f in frames]

    sop_class = CT_IMAGE if a.ct else DX_FOR_PROCESSING
    instance = a.sop_instance_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = instance
    meta.TransferSyntaxUID = JPEGBaseline8Bit if a.compressed else ImplicitVRLittleEndian if a.implicit else ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = instance
    ds.Modality = "CT" if a.ct else "DX"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "OOI^Parcel"
    ds.PatientID = a.parcel or ""
    if a.station:
        ds.StationName = a.station
    ds.OOIType = "BAGGAGE"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if a.monochrome1 else "MONOCHROME2"
    rows, columns = pixels.shape
    if a.claim:
        rows, columns = (int(v) for v in a.claim.lower().split("x"))
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
    data = b"".join(f.astype("<u2" if bits == 16 else "u1").tobytes() for f in frames)
    if a.compressed:
        ds.PixelData = encapsulate([data[:1024]])
        ds["PixelData"].VR = "OB"
    else:
        ds.PixelData = data
        ds["PixelData"].VR = "OW" if bits == 16 else "OB"

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = buf.getvalue()
    if a.no_preamble:
        out = out[128:]
    pathlib.Path(a.out).write_bytes(out)
    print(instance)


if __name__ == "__main__":
    main()
