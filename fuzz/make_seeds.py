#!/usr/bin/env python3
"""Writes the small hand-made seeds of the fuzz targets into fuzz/seeds/ (committed; rerun only
to change them). Python's standard library only: tiny pictures in every format family tusk
decodes except JPEG and WebP (JPEG seeds come from tests/fixtures and datasets/demo, see
scripts/fuzz.sh), DICOS DX objects as X-ray stations send them, and HTTP/1.1 exchanges with
`tusk serve` using the fuzzed server's tokens (tests/fuzz_harness/mod.rs)."""

import hashlib
import os
import struct
import sys
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- PNG -------------------------------------------------------------------------------------

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, colour, depth, rows, interlace=False, extra=b""):
    """rows: list of bytes per row (already packed samples)."""
    bpp = max(1, {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour] * depth // 8)
    if interlace:
        raw = b""
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            xs = range(x0, width, dx)
            for y in range(y0, height, dy):
                if not xs:
                    continue
                raw += b"\x00" + b"".join(rows[y][x * bpp:(x + 1) * bpp] for x in xs)
    else:
        # Alternate the filter types so the decoder's unfiltering runs.
        raw = b""
        for i, r in enumerate(rows):
            f = i % 2
            if f == 1:  # Sub
                r = bytes((r[j] - (r[j - bpp] if j >= bpp else 0)) & 0xFF for j in range(len(r)))
            raw += bytes([f]) + r
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 1 if interlace else 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def grad(w, h, x, y, c):
    return (x * 37 + y * 23 + c * 71) & 0xFF


def images():
    w, h = 13, 9
    write("image", "grey8.png", png(w, h, 0, 8, [bytes(grad(w, h, x, y, 0) for x in range(w)) for y in range(h)]))
    write("image", "grey16.png", png(w, h, 0, 16, [b"".join(struct.pack(">H", grad(w, h, x, y, 0) * 257) for x in range(w)) for y in range(h)]))
    write("image", "rgb8.png", png(w, h, 2, 8, [bytes(grad(w, h, x, y, c) for x in range(w) for c in range(3)) for y in range(h)]))
    write("image", "rgba16.png", png(w, h, 6, 16, [b"".join(struct.pack(">H", grad(w, h, x, y, c) * 257) for x in range(w) for c in range(4)) for y in range(h)]))
    write("image", "grey_alpha.png", png(w, h, 4, 8, [bytes(grad(w, h, x, y, c) for x in range(w) for c in range(2)) for y in range(h)]))
    plte = chunk(b"PLTE", bytes(range(48))) + chunk(b"tRNS", b"\x00\x80")
    write("image", "palette4.png", png(w, h, 3, 4, [bytes(((x % 16) << 4 | ((x + 1) % 16)) for x in range(0, w, 2)) for y in range(h)], extra=plte))
    write("image", "interlaced.png", png(w, h, 2, 8, [bytes(grad(w, h, x, y, c) for x in range(w) for c in range(3)) for y in range(h)], interlace=True))

    # TIFF: 16-bit grey little-endian (what X-ray stations write), 8-bit RGB big-endian.
    def tiff(endian, width, height, spp, bps, data):
        e = "<" if endian == b"II" else ">"
        entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 1, bps), (259, 3, 1, 1),
                   (262, 3, 1, 1 if spp == 1 else 2), (273, 4, 1, 0), (277, 3, 1, spp),
                   (278, 3, 1, height), (279, 4, 1, len(data))]
        ifd_at = 8
        data_at = ifd_at + 2 + 12 * len(entries) + 4
        out = endian + struct.pack(e + "HI", 42, ifd_at) + struct.pack(e + "H", len(entries))
        for tag, typ, count, value in entries:
            if tag == 273:
                value = data_at
            if typ == 3:
                out += struct.pack(e + "HHIHH", tag, typ, count, value, 0)
            else:
                out += struct.pack(e + "HHII", tag, typ, count, value)
        return out + struct.pack(e + "I", 0) + data

    write("image", "grey16.tiff", tiff(b"II", w, h, 1, 16, b"".join(struct.pack("<H", grad(w, h, x, y, 0) * 250) for y in range(h) for x in range(w))))
    write("image", "rgb8.tiff", tiff(b"MM", w, h, 3, 8, bytes(grad(w, h, x, y, c) for y in range(h) for x in range(w) for c in range(3))))

    # BMP: 24-bit bottom-up and 32-bit top-down.
    def bmp(width, height, bits, top_down):
        stride = (width * bits // 8 + 3) & ~3
        rows = []
        for y in range(height):
            row = bytes(grad(width, height, x, y, c) for x in range(width) for c in range(bits // 8))
            rows.append(row + b"\x00" * (stride - len(row)))
        if not top_down:
            rows.reverse()
        pixels = b"".join(rows)
        info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, bits, 0, len(pixels), 2835, 2835, 0, 0)
        return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels

    write("image", "rgb24.bmp", bmp(w, h, 24, False))
    write("image", "rgb32_top_down.bmp", bmp(w, h, 32, True))

    # GIF: an uncompressed LZW stream (a clear code often enough that codes stay 9 bits), two
    # frames, so the "first frame of an animation" path runs.
    def lzw(pixels):
        codes = [256]
        since = 0
        for p in pixels:
            if since == 250:
                codes.append(256)
                since = 0
            codes.append(p)
            since += 1
        codes.append(257)
        bits, n, out = 0, 0, bytearray()
        for c in codes:
            bits |= c << n
            n += 9
            while n >= 8:
                out.append(bits & 0xFF)
                bits >>= 8
                n -= 8
        if n:
            out.append(bits & 0xFF)
        blocks = b"".join(bytes([len(out[i:i + 255])]) + bytes(out[i:i + 255]) for i in range(0, len(out), 255))
        return b"\x08" + blocks + b"\x00"

    palette = bytes(i * 3 % 256 for i in range(768))
    gif = b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF7, 0, 0) + palette
    gif += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for frame in range(2):
        gif += b"!\xf9\x04\x04\x0a\x00\x00\x00"
        gif += b"," + struct.pack("<HHHHB", 0, 0, w, h, 0)
        gif += lzw([grad(w, h, x, y, frame) for y in range(h) for x in range(w)])
    write("image", "animated.gif", gif + b";")


# ---- DICOS -----------------------------------------------------------------------------------

LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
DICOS_DX = b"1.2.840.10008.5.1.4.1.1.501.2.2"
DICOM_DX = b"1.2.840.10008.5.1.4.1.1.1.1"
EXPLICIT = b"1.2.840.10008.1.2.1"
IMPLICIT = b"1.2.840.10008.1.2"


def pad(vr, value):
    if len(value) % 2:
        value += b"\x00" if vr in (b"UI", b"OB") else b" "
    return value


def el_explicit(group, elem, vr, value):
    value = pad(vr, value)
    head = struct.pack("<HH", group, elem) + vr
    if vr in LONG_VRS:
        return head + b"\x00\x00" + struct.pack("<I", len(value)) + value
    return head + struct.pack("<H", len(value)) + value


def el_implicit(group, elem, vr, value):
    value = pad(vr, value)
    return struct.pack("<HHI", group, elem, len(value)) + value


def dicos(ts, sop_class, rows, cols, bits, stored, photometric, pixels, frames=None, preamble=True, sequence=False):
    el = el_explicit if ts == EXPLICIT else el_implicit
    meta = el_explicit(2, 1, b"OB", b"\x00\x01") + el_explicit(2, 2, b"UI", sop_class) + el_explicit(2, 3, b"UI", b"1.2.3.4.5")
    meta += el_explicit(2, 0x10, b"UI", ts) + el_explicit(2, 0x12, b"UI", b"1.2.3.4.99")
    head = (b"\x00" * 128 if preamble else b"") + b"DICM" + el_explicit(2, 0, b"UL", struct.pack("<I", len(meta))) + meta
    us = lambda v: struct.pack("<H", v)
    body = el(8, 0x16, b"UI", sop_class) + el(8, 0x18, b"UI", b"1.2.3.4.5") + el(8, 0x60, b"CS", b"DX")
    body += el(8, 0x1010, b"SH", b"station-7")
    if sequence:
        # Referenced Image Sequence with one item holding two elements (defined lengths).
        item = el(8, 0x1150, b"UI", DICOM_DX) + el(8, 0x1155, b"UI", b"1.2.3.9")
        seq_item = struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item
        if ts == EXPLICIT:
            body += struct.pack("<HH", 8, 0x1140) + b"SQ\x00\x00" + struct.pack("<I", len(seq_item)) + seq_item
        else:
            body += struct.pack("<HHI", 8, 0x1140, len(seq_item)) + seq_item
    body += el(0x10, 0x10, b"PN", b"Doe^Jane") + el(0x10, 0x20, b"LO", b"parcel-42")
    body += el(0x20, 0x0D, b"UI", b"1.2.3.4.6")
    body += el(0x28, 0x02, b"US", us(1)) + el(0x28, 0x04, b"CS", photometric)
    if frames is not None:
        body += el(0x28, 0x08, b"IS", str(frames).encode())
    body += el(0x28, 0x10, b"US", us(rows)) + el(0x28, 0x11, b"US", us(cols))
    body += el(0x28, 0x100, b"US", us(bits)) + el(0x28, 0x101, b"US", us(stored)) + el(0x28, 0x102, b"US", us(stored - 1))
    body += el(0x28, 0x103, b"US", us(0))
    body += el(0x4010, 0x1042, b"CS", b"BAGGAGE")
    body += el(0x7FE0, 0x10, b"OW" if bits == 16 else b"OB", pixels)
    return head + body


def dicos_seeds():
    r, c = 5, 7
    px16 = b"".join(struct.pack("<H", (x * 9000 + y * 1300) & 0xFFFF) for y in range(r) for x in range(c))
    px12 = b"".join(struct.pack("<H", (x * 500 + y * 90) & 0x0FFF) for y in range(r) for x in range(c))
    px8 = bytes((x * 31 + y * 17) & 0xFF for y in range(r) for x in range(c))
    write("dicos", "dicos_dx_explicit16.dcm", dicos(EXPLICIT, DICOS_DX, r, c, 16, 16, b"MONOCHROME2", px16))
    write("dicos", "dicos_dx_implicit_nopreamble_mono1.dcm", dicos(IMPLICIT, DICOS_DX, r, c, 16, 16, b"MONOCHROME1", px16, preamble=False))
    write("dicos", "dicom_dx_explicit8.dcm", dicos(EXPLICIT, DICOM_DX, r, c, 8, 8, b"MONOCHROME2", px8 + b"\x00"))
    write("dicos", "dicos_dx_two_frames12.dcm", dicos(EXPLICIT, DICOS_DX, r, c, 16, 12, b"MONOCHROME2", px12 * 2, frames=2))
    write("dicos", "dicos_dx_implicit_sequence.dcm", dicos(IMPLICIT, DICOS_DX, r, c, 16, 16, b"MONOCHROME2", px16, sequence=True))
    write("dicos", "dicos_dx_explicit_sequence.dcm", dicos(EXPLICIT, DICOS_DX, r, c, 16, 16, b"MONOCHROME2", px16, sequence=True))
    return dicos(EXPLICIT, DICOS_DX, r, c, 16, 16, b"MONOCHROME2", px16)


# ---- HTTP ------------------------------------------------------------------------------------

def request(method, path, headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: tusk"] + list(headers)
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def http_seeds(dx):
    def auth(role):
        return f"Authorization: Bearer fuzz-{role}"

    w, h = 40, 30
    rgb = png(w, h, 2, 8, [bytes(grad(w, h, x, y, c) for x in range(w) for c in range(3)) for y in range(h)])
    grey16 = png(w, h, 0, 16, [b"".join(struct.pack(">H", grad(w, h, x, y, 0) * 257) for x in range(w)) for y in range(h)])
    write("serve_http", "health.http", request("GET", "/healthz") + request("GET", "/readyz") + request("GET", "/metrics"))
    write("serve_http", "openapi.http", request("GET", "/v1/openapi.json", [auth("analyst")]))
    write("serve_http", "scan_png.http", request("POST", "/v1/scans?station=s1&parcel=p1", [auth("station"), "Content-Type: image/png"], grey16)
          + request("GET", "/v1/objects/1", [auth("analyst")]) + request("GET", "/v1/objects/1/overlay.png", [auth("admin")]))
    write("serve_http", "scan_dicos.http", request("POST", "/v1/scans", [auth("station"), "Content-Type: application/dicom", "Accept: application/dicom"], dx))
    write("serve_http", "listing_and_match.http",
          request("POST", "/v1/listings?listing_id=L1&seller_id=s1&platform=p", [auth("crawler"), "Content-Type: image/png"], rgb)
          + request("POST", "/v1/listings?listing_id=L2&seller_id=s2&platform=p", [auth("crawler"), "Content-Type: image/png"], rgb)
          + request("GET", "/v1/match?hash=" + "0f" * 32, [auth("analyst")])
          + request("POST", "/v1/match", [auth("analyst"), "Content-Type: image/png"], rgb)
          + request("GET", "/v1/clusters", [auth("analyst")])
          + request("GET", "/v1/sellers/s1/links", [auth("analyst")])
          + request("POST", "/v1/objects/1/decisions", [auth("analyst"), "Content-Type: application/json"],
                    b'{"action":"reject","reason":"resin","note":"n","boxes":[{"label":"ivory","box":[1,2,30,20]}]}')
          + request("GET", "/v1/decisions?object=1", [auth("analyst")]))
    token = "fuzz-analyst"
    csrf = hashlib.sha256(f"tusk-csrf\0{token}".encode()).hexdigest()[:32]
    cookie = f"Cookie: tusk_session={token}"
    form = "Content-Type: application/x-www-form-urlencoded"
    write("serve_http", "review.http",
          request("POST", "/signin", [form], f"token={token}&next=/objects/1".encode())
          + request("GET", "/?label=ivory&order=uncertain&page=1", [cookie])
          + request("GET", "/objects/1?undo=3,4", [cookie])
          + request("GET", "/objects/1/image?w=64", [cookie])
          + request("POST", "/objects/1/decide", [cookie, form, "Origin: http://tusk"],
                    f"csrf={csrf}&action=confirm&box0_label=ivory&box0_x0=1&box0_y0=1&box0_x1=9&box0_y1=9&back=/".encode())
          + request("POST", "/decisions/undo", [cookie, form], f"csrf={csrf}&ids=1,2&back=/objects/1".encode())
          + request("GET", "/sellers/s1", [cookie]) + request("GET", "/network", [cookie])
          + request("GET", "/network.csv", [cookie]) + request("GET", "/network.graphml", [cookie])
          + request("POST", "/signout", [cookie, form], f"csrf={csrf}".encode()))


if __name__ == "__main__":
    images()
    dx = dicos_seeds()
    http_seeds(dx)
    print(f"seeds written under {OUT}", file=sys.stderr)
