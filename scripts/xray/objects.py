"""Objects that go into a parcel: wildlife items (labelled), look-alikes and ordinary clutter.

Each maker takes (rng, ppc, family) and returns an `Item`: a local canvas with one thickness map
per material, and the label boxes it holds. `family` picks a shape family; scripts/xray/synth.py
gives the test split families that train and validation never see (HELD_OUT below).
"""

import math
from dataclasses import dataclass, field

import numpy as np

from shapes import box_shell, ellipsoid, noise_field, ring, smooth_curve, spiral, superellipse, tube

CLASSES = ["ivory", "pangolin_scales", "live_reptile"]


@dataclass
class Item:
    """A rendered object before placement: local canvas size, parts, labelled boxes."""

    kind: str
    h: int
    w: int
    parts: list = field(default_factory=list)  # (material, thickness map h x w)
    boxes: list = field(default_factory=list)  # (class index, y0, x0, y1, x1) in local px

    def add(self, material, t):
        self.parts.append((material, t))

    def label_whole(self, cls: int, min_cm: float = 0.05):
        """One box around everything in the item thicker than `min_cm`."""
        total = sum(t for _, t in self.parts)
        ys, xs = np.nonzero(total > min_cm)
        if len(ys):
            self.boxes.append((cls, ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))


def _canvas(size_px):
    s = int(math.ceil(size_px)) + 4
    return s, s


# ---------------------------------------------------------------- ivory (class 0)


def tusk_section(rng, ppc, family):
    """A section of elephant tusk: a curved, tapering dentine cone, hollow (pulp cavity) towards
    the wide end. Families: 0 long gentle curve, 1 short thick base section, 2 (held out) strongly
    curved tip section."""
    length = rng.uniform(*[(25, 60), (15, 30), (18, 40)][family]) * ppc
    r_base = rng.uniform(*[(2.5, 5.0), (4.0, 7.0), (2.0, 4.0)][family]) * ppc
    r_tip = r_base * rng.uniform(*[(0.25, 0.6), (0.6, 0.85), (0.05, 0.25)][family])
    curve = rng.uniform(*[(0.1, 0.4), (0.0, 0.2), (0.5, 0.9)][family])
    h, w = _canvas(length + 2 * r_base)
    n = 40
    a0 = rng.uniform(0, 2 * math.pi)
    t = np.linspace(-0.5, 0.5, n)
    u, v = t * length, curve * length * (t**2 - 0.25) * 0.8
    c, s = math.cos(a0), math.sin(a0)
    path = np.stack([h / 2 + u * s + v * c, w / 2 + u * c - v * s], axis=1)
    radius = np.linspace(r_base, r_tip, n)
    solid = tube(h, w, path, radius, ppc)
    # pulp cavity: a cone from the base, about a third of the length
    k = int(n * rng.uniform(0.2, 0.5)) if family != 2 else int(n * 0.1)
    cavity = tube(h, w, path[: k + 1], np.linspace(r_base * 0.6, 0.5, k + 1), ppc)
    it = Item("tusk_section", h, w)
    it.add("dentine", np.clip(solid - cavity, 0, None))
    it.label_whole(0)
    return it


def figurine(rng, ppc, family, material="dentine"):
    """A carved figure: stacked ellipsoids (body, head, base) with carving texture. Families:
    0 standing figure, 1 animal on legs, 2 (held out) reclining figure. Also used with resin or
    ceramic as a look-alike."""
    size = rng.uniform(6, 22) * ppc
    h, w = _canvas(size * 1.6)
    cy, cx = h / 2, w / 2
    a = rng.uniform(0, 2 * math.pi)
    d = size / ppc * 0.35
    ca, sa = math.cos(a), math.sin(a)

    def at(u, v):  # local offset along/across the figure's axis
        return cy + u * sa + v * ca, cx + u * ca - v * sa

    t = np.zeros((h, w))
    if family == 0:
        for u, ry, rx, dd in [(0.0, 0.22, 0.5, 1.0), (0.55, 0.18, 0.18, 0.7), (-0.5, 0.25, 0.18, 0.8)]:
            y, x = at(u * size * 0.6, 0)
            t = np.maximum(t, ellipsoid(h, w, y, x, ry * size, rx * size * 0.6, a, d * dd))
    elif family == 1:
        y, x = at(0, 0)
        t = np.maximum(t, ellipsoid(h, w, y, x, size * 0.22, size * 0.4, a, d))
        y, x = at(size * 0.45, -size * 0.1)
        t = np.maximum(t, ellipsoid(h, w, y, x, size * 0.15, size * 0.15, a, d * 0.7))
        for lu in (-0.25, 0.25):
            y0, x0 = at(lu * size, size * 0.1)
            y1, x1 = at(lu * size, size * 0.4)
            t = np.maximum(t, tube(h, w, [(y0, x0), (y1, x1)], size * 0.06, ppc))
    else:
        for u, ry, rx, dd in [(-0.3, 0.3, 0.35, 0.9), (0.2, 0.2, 0.3, 0.8), (0.5, 0.14, 0.14, 0.6)]:
            y, x = at(u * size, 0)
            t = np.maximum(t, ellipsoid(h, w, y, x, ry * size, rx * size, a, d * dd))
    carve = 0.75 + 0.25 * noise_field(rng, h, w, max(2.0, size / 12))
    it = Item("figurine" if material == "dentine" else f"{material}_carving", h, w)
    it.add(material, t * carve)
    if material == "dentine":
        it.label_whole(0)
    return it


def bangles(rng, ppc, family):
    """One to six ivory bangles, stacked or scattered. Family 2 (held out): wide flat cuffs."""
    n = int(rng.integers(1, 7))
    r = rng.uniform(3.0, 4.5) * ppc
    h, w = _canvas(r * 2 * (1.6 if n > 1 else 1.1))
    it = Item("bangles", h, w)
    t = np.zeros((h, w))
    stack = rng.random() < 0.5
    for i in range(n):
        dy, dx = (rng.normal(0, r * 0.08, 2) if stack else rng.uniform(-r * 0.5, r * 0.5, 2))
        rt = (rng.uniform(0.5, 0.9) if family != 2 else rng.uniform(1.2, 1.8)) * ppc
        squash = rng.uniform(0.3, 1.0)
        t += ring(h, w, h / 2 + dy, w / 2 + dx, r, rt, ppc, squash, rng.uniform(0, math.pi))
    it.add("dentine", t)
    it.label_whole(0)
    return it


def chopsticks(rng, ppc, family):
    """A bundle of ivory chopsticks (family 2, held out: loose, crossed)."""
    n = int(rng.integers(2, 12))
    length = rng.uniform(22, 27) * ppc
    h, w = _canvas(length * 1.1)
    a = rng.uniform(0, math.pi)
    t = np.zeros((h, w))
    for i in range(n):
        aa = a + (rng.normal(0, 0.03) if family != 2 else rng.normal(0, 0.4))
        off = rng.normal(0, 0.5 * ppc) + (i - n / 2) * 0.55 * ppc
        c, s = math.cos(aa), math.sin(aa)
        oy, ox = h / 2 + off * c, w / 2 - off * s
        half = length / 2
        path = [(oy - half * s, ox - half * c), (oy + half * s, ox + half * c)]
        t = np.maximum(t, tube(h, w, path, [0.35 * ppc, 0.2 * ppc], ppc))
    it = Item("chopsticks", h, w)
    it.add("dentine", t)
    it.label_whole(0)
    return it


def beads(rng, ppc, family):
    """A string of ivory beads along a loose loop (family 2, held out: large carved beads)."""
    n = int(rng.integers(15, 60)) if family != 2 else int(rng.integers(8, 20))
    rb = (rng.uniform(0.35, 0.7) if family != 2 else rng.uniform(0.8, 1.3)) * ppc
    h, w = _canvas(n * rb * 0.9 + 8 * rb)
    path = spiral(h / 2, w / 2, n * rb * 0.3, n * rb * 0.32, 1.0, rng.uniform(0, 6.3), n)
    path += rng.normal(0, rb * 0.3, path.shape)
    t = np.zeros((h, w))
    for y, x in path:
        t = np.maximum(t, ellipsoid(h, w, y, x, rb, rb, 0.0, 2 * rb / ppc))
    it = Item("beads", h, w)
    it.add("dentine", t)
    it.add("plastic", tube(h, w, path, 0.05 * ppc, ppc))  # the string
    it.label_whole(0)
    return it


def hanko(rng, ppc, family):
    """Hanko seals: short solid ivory cylinders, seen side-on or end-on, one to eight."""
    n = int(rng.integers(1, 9))
    length, r = rng.uniform(5, 7) * ppc, rng.uniform(0.6, 0.9) * ppc
    h, w = _canvas(length * (1.5 if n > 1 else 1.1) + 4 * r)
    t = np.zeros((h, w))
    for i in range(n):
        cy, cx = h / 2 + rng.uniform(-1, 1) * r * 2, w / 2 + rng.uniform(-1, 1) * r * 2 * (n > 1)
        if rng.random() < 0.7 or family == 2:
            a = rng.uniform(0, math.pi)
            c, s = math.cos(a), math.sin(a)
            p = [(cy - length / 2 * s, cx - length / 2 * c), (cy + length / 2 * s, cx + length / 2 * c)]
            t = np.maximum(t, tube(h, w, p, r, ppc))
        else:
            t = np.maximum(t, superellipse(h, w, cy, cx, r, r, 0.0, length / ppc, power=2.0))
    it = Item("hanko", h, w)
    it.add("dentine", t)
    it.label_whole(0)
    return it


# ---------------------------------------------------------------- pangolin scales (class 1)


def _scale_plate(h, w, cy, cx, size, a, family, rng, ppc):
    """One keratin scale: shield (0), fan (1) or rhomb (2, held out); thick at the base, ridged."""
    if family == 0:
        p = superellipse(h, w, cy, cx, size, size * 0.8, a, 1.0, power=2.2, taper=0.7)
    elif family == 1:
        p = superellipse(h, w, cy, cx, size * 0.75, size, a, 1.0, power=2.0, taper=0.4)
    else:
        p = superellipse(h, w, cy, cx, size, size * 0.7, a, 1.0, power=1.1, taper=0.1)
    y, x = np.mgrid[0:h, 0:w] + 0.5
    along = (-(x - cx) * math.sin(a) + (y - cy) * math.cos(a)) / size
    across = ((x - cx) * math.cos(a) + (y - cy) * math.sin(a)) / size
    profile = 0.22 + 0.20 * np.clip(1 - along, 0, 2) / 2  # cm, thicker at the base
    ridges = 1.0 + 0.25 * np.sin(across * rng.uniform(14, 22))
    return p * profile * ridges


def scale_pile(rng, ppc, family):
    """Many overlapping pangolin scales in a bag, a wrapped bundle, or loose in a heap."""
    n = int(rng.integers(20, 120))
    size = rng.uniform(1.5, 3.0) * ppc
    spread = size * math.sqrt(n) * rng.uniform(0.45, 0.8)
    h, w = _canvas(2 * spread + 4 * size)
    t = np.zeros((h, w))
    ell = rng.uniform(0.5, 1.0)
    for _ in range(n):
        rr, aa = spread * math.sqrt(rng.random()), rng.uniform(0, 2 * math.pi)
        cy, cx = h / 2 + rr * math.sin(aa) * ell, w / 2 + rr * math.cos(aa)
        s = size * rng.uniform(0.7, 1.3)
        y0, x0 = int(max(0, cy - 1.5 * s)), int(max(0, cx - 1.5 * s))
        y1, x1 = int(min(h, cy + 1.5 * s)), int(min(w, cx + 1.5 * s))
        if y1 - y0 < 2 or x1 - x0 < 2:
            continue
        plate = _scale_plate(y1 - y0, x1 - x0, cy - y0, cx - x0, s, rng.uniform(0, 6.3), family, rng, ppc)
        t[y0:y1, x0:x1] += plate
    it = Item("pangolin_scales", h, w)
    it.add("keratin", t)
    wrap = rng.integers(0, 3)  # 0 loose, 1 plastic bag, 2 cloth bundle
    if wrap:
        bag = ellipsoid(h, w, h / 2, w / 2, spread * ell + 2 * size, spread + 2 * size, 0.0, 1.0)
        film = (bag > 0) * (0.02 if wrap == 1 else 0.4)
        it.add("plastic" if wrap == 1 else "cloth", film * (0.6 + 0.8 * noise_field(rng, h, w, size)))
    ys, xs = np.nonzero(t > 0.05)
    if len(ys):
        it.boxes.append((1, ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
    return it


# ---------------------------------------------------------------- live reptiles (class 2)


def _spine(h, w, path, body_r, ppc, ribs=True):
    """Vertebrae as small bone beads along the body's centre line, ribs across it."""
    t = np.zeros((h, w))
    step = max(1, int(len(path) / max(4, len(path))))
    seg = np.diff(path, axis=0)
    for i in range(0, len(path) - 1, step):
        y, x = path[i]
        t = np.maximum(t, ellipsoid(h, w, y, x, body_r * 0.22, body_r * 0.22, 0.0, body_r * 0.4 / ppc))
        if ribs and i % 2 == 0:
            dy, dx = seg[i]
            n = math.hypot(dy, dx) + 1e-9
            ny, nx = -dx / n, dy / n
            p = [(y - ny * body_r * 0.85, x - nx * body_r * 0.85), (y + ny * body_r * 0.85, x + nx * body_r * 0.85)]
            t = np.maximum(t, tube(h, w, p, max(0.5, body_r * 0.05), ppc))
    return t


def snake(rng, ppc, family):
    """A live snake: a soft-tissue tube with spine and ribs, coiled (0), meandering in a bag (1),
    or in a double coil (2, held out)."""
    body_r = rng.uniform(0.5, 2.0) * ppc
    length = body_r * rng.uniform(40, 90)
    if family == 0:
        turns = rng.uniform(1.5, 3.5)
        r1 = length / (turns * math.pi * 1.1)
        path = spiral(0, 0, body_r * 2.2, r1, turns, rng.uniform(0, 6.3))
    elif family == 1:
        n = int(length / body_r)
        path = smooth_curve(rng, n, body_r, 0.25, (0, 0), rng.uniform(0, 6.3))
    else:
        turns = rng.uniform(1.2, 2.0)
        r1 = length / (turns * math.pi * 2.2)
        p1 = spiral(0, 0, body_r * 2.2, r1, turns, 0.0)
        p2 = spiral(0, 2.2 * r1, r1, body_r * 2.2, turns, math.pi)
        path = np.concatenate([p1, p2])
    path = path - path.min(axis=0) + 3 * body_r
    h, w = int(path[:, 0].max() + 3 * body_r), int(path[:, 1].max() + 3 * body_r)
    radius = body_r * np.clip(np.linspace(0.5, 1.0, len(path)) ** 0.3, 0, 1)
    radius[-len(path) // 6 :] *= np.linspace(1, 0.3, len(radius[-len(path) // 6 :]))  # tail
    it = Item("snake", h, w)
    it.add("tissue", tube(h, w, path, radius, ppc))
    it.add("bone", _spine(h, w, path, body_r, ppc))
    it.label_whole(2, 0.3)
    if rng.random() < 0.6:  # in a cloth bag
        bag = ellipsoid(h, w, h / 2, w / 2, h / 2, w / 2, 0.0, 1.0) > 0
        it.add("cloth", bag * rng.uniform(0.2, 0.6))
    return it


def lizard(rng, ppc, family, in_sock=None):
    """A lizard: body, head, tail, four legs, spine; often in a sock or a tube."""
    L = rng.uniform(8, 30) * ppc
    body_r = L * rng.uniform(0.07, 0.12) * (0.7 if family == 1 else 1.0)
    a = rng.uniform(0, 2 * math.pi)
    h, w = _canvas(L * 1.4)
    cy, cx = h / 2, w / 2
    bend = rng.normal(0, 0.15)
    pts = []
    for i, u in enumerate(np.linspace(-0.5, 0.5, 24)):
        aa = a + bend * u * 4
        pts.append((cy + u * L * math.sin(aa), cx + u * L * math.cos(aa)))
    path = np.array(pts)
    radius = np.interp(np.linspace(0, 1, 24), [0, 0.45, 0.55, 0.8, 0.9, 1.0],
                       [0.1, 0.6, 1.0, 1.0, 0.7, 0.6]) * body_r
    t = tube(h, w, path, radius, ppc)
    c, s = math.cos(a), math.sin(a)
    for k in (14, 19):
        y, x = path[k]
        for side in (-1, 1):
            p = [(y, x), (y + side * c * body_r * 2.2, x - side * s * body_r * 2.2)]
            t = np.maximum(t, tube(h, w, p, body_r * 0.25, ppc))
    it = Item("lizard", h, w)
    it.add("tissue", t)
    it.add("bone", _spine(h, w, path[6:], body_r, ppc, ribs=True))
    it.label_whole(2, 0.3)
    if in_sock if in_sock is not None else rng.random() < 0.5:
        sock = tube(h, w, path[[0, -1]], body_r * 3.0, ppc) > 0
        it.add("cloth" if rng.random() < 0.6 else "plastic", sock * rng.uniform(0.1, 0.3))
    return it


def tortoise(rng, ppc, family):
    """A tortoise or turtle: domed keratin shell over a bony carapace with a bone rim, head and
    legs. Families: 0 round, 1 flat oval (turtle), 2 (held out) high-domed."""
    R = rng.uniform(4, 15) * ppc
    ry = R * (rng.uniform(0.75, 0.95) if family != 1 else rng.uniform(0.55, 0.7))
    dome = R / ppc * (0.7 if family == 0 else 0.35 if family == 1 else 1.1)
    a = rng.uniform(0, math.pi)
    h, w = _canvas(R * 2.8)
    cy, cx = h / 2, w / 2
    it = Item("tortoise", h, w)
    shell = ellipsoid(h, w, cy, cx, ry, R, a, dome)
    it.add("keratin", np.clip(shell, 0, 0.3))
    it.add("bone", np.clip(shell * 0.25, 0, 0.4) + ring(h, w, cy, cx, R * 0.95, R * 0.05, ppc, ry / R, a))
    # body inside, head and legs sticking out
    it.add("tissue", ellipsoid(h, w, cy, cx, ry * 0.85, R * 0.85, a, dome * 0.8))
    c, s = math.cos(a), math.sin(a)
    head = (cy + s * R * 1.15, cx + c * R * 1.15)
    it.add("tissue", ellipsoid(h, w, head[0], head[1], R * 0.18, R * 0.25, a, R * 0.3 / ppc))
    for ang in (0.7, -0.7, 2.4, -2.4):
        y, x = cy + math.sin(a + ang) * ry, cx + math.cos(a + ang) * R
        it.add("tissue", ellipsoid(h, w, y, x, R * 0.15, R * 0.15, 0.0, R * 0.25 / ppc))
    it.label_whole(2, 0.3)
    return it


def reptile_container(rng, ppc, family):
    """Several small animals (lizards or hatchling turtles) in a plastic box: one box each."""
    n = int(rng.integers(2, 7))
    animals = [
        (lizard(rng, ppc * 0.5, family, in_sock=False) if rng.random() < 0.5 else tortoise(rng, ppc * 0.4, family % 2))
        for _ in range(n)
    ]
    side = int(max(max(a.h, a.w) for a in animals) * math.ceil(math.sqrt(n)) * 1.0) + 8
    h = w = side
    it = Item("reptile_container", h, w)
    it.add("plastic", box_shell(h, w, 1, 1, h - 1, w - 1, 0.2, 8.0, ppc))
    cells = int(math.ceil(math.sqrt(n)))
    cell = (side - 8) / cells
    for i, an in enumerate(animals):
        oy = int(4 + (i // cells) * cell + rng.uniform(0, max(0, cell - an.h)))
        ox = int(4 + (i % cells) * cell + rng.uniform(0, max(0, cell - an.w)))
        oy, ox = min(oy, h - an.h), min(ox, w - an.w)
        for mat, t in an.parts:
            full = np.zeros((h, w))
            full[oy : oy + an.h, ox : ox + an.w] = t
            it.add(mat, full)
        for cls, y0, x0, y1, x1 in an.boxes:
            it.boxes.append((cls, y0 + oy, x0 + ox, y1 + oy, x1 + ox))
    return it


# ---------------------------------------------------------------- look-alikes (no label)


def cutlery(rng, ppc, family):
    """Bone-handled knives and forks: bone looks like ivory, the steel blade does not."""
    n = int(rng.integers(1, 7))
    L = rng.uniform(18, 24) * ppc
    h, w = _canvas(L * 1.2)
    a = rng.uniform(0, math.pi)
    it = Item("bone_cutlery", h, w)
    bone, steel = np.zeros((h, w)), np.zeros((h, w))
    for i in range(n):
        aa = a + rng.normal(0, 0.05)
        off = (i - n / 2) * 1.6 * ppc
        c, s = math.cos(aa), math.sin(aa)
        oy, ox = h / 2 + off * c, w / 2 - off * s
        p = lambda u: (oy + u * L * s, ox + u * L * c)  # noqa: E731
        bone = np.maximum(bone, tube(h, w, [p(-0.5), p(-0.05)], 0.6 * ppc, ppc))
        steel = np.maximum(steel, tube(h, w, [p(-0.05), p(0.5)], [0.5 * ppc, 0.3 * ppc], ppc) * 0.15)
    it.add("bone", bone)
    it.add("steel", steel)
    return it


def dried_food_bag(rng, ppc, family):
    """A bag of dried food pieces (mushrooms, fish maw, chips): many overlapping organic flakes,
    the closest look-alike of a bag of scales."""
    n = int(rng.integers(15, 80))
    size = rng.uniform(1.0, 3.5) * ppc
    spread = size * math.sqrt(n) * 0.8
    h, w = _canvas(2 * spread + 4 * size)
    t = np.zeros((h, w))
    for _ in range(n):
        rr, aa = spread * math.sqrt(rng.random()), rng.uniform(0, 6.3)
        cy, cx = h / 2 + rr * math.sin(aa), w / 2 + rr * math.cos(aa)
        s = size * rng.uniform(0.5, 1.3)
        t += ellipsoid(h, w, cy, cx, s * rng.uniform(0.4, 1.0), s, rng.uniform(0, 6.3), rng.uniform(0.2, 1.0))
    it = Item("dried_food", h, w)
    it.add("food", t * (0.7 + 0.6 * noise_field(rng, h, w, size / 2)))
    bag = ellipsoid(h, w, h / 2, w / 2, spread + 2 * size, spread + 2 * size, 0.0, 1.0)
    it.add("plastic", (bag > 0) * 0.02)
    return it


def coiled_cable(rng, ppc, family):
    """A coiled power cable: copper cores in plastic, a snake-like loop."""
    r_c = rng.uniform(0.3, 0.7) * ppc
    turns = rng.uniform(2, 8)
    R = rng.uniform(6, 15) * ppc
    h, w = _canvas(2 * R + 6 * r_c)
    path = spiral(h / 2, w / 2, R * 0.85, R, turns, rng.uniform(0, 6.3), int(turns * 50))
    path += rng.normal(0, r_c * 0.6, path.shape)
    it = Item("coiled_cable", h, w)
    it.add("plastic", tube(h, w, path, r_c, ppc))
    it.add("copper", tube(h, w, path, r_c * 0.3, ppc))
    return it


def belt(rng, ppc, family):
    """A rolled leather belt with a steel buckle."""
    turns = rng.uniform(2, 5)
    R = rng.uniform(3, 6) * ppc
    h, w = _canvas(2 * R + 6 * ppc)
    path = spiral(h / 2, w / 2, R * 0.4, R, turns, rng.uniform(0, 6.3))
    it = Item("belt", h, w)
    it.add("rubber", np.clip(tube(h, w, path, 1.7 * ppc, ppc), 0, 0.4))
    y, x = path[-1]
    it.add("steel", ellipsoid(h, w, y, x, 2 * ppc, 2.5 * ppc, 0.0, 0.3))
    return it


def resin_carving(rng, ppc, family):
    """A resin or plastic carving shaped like an ivory figure."""
    return figurine(rng, ppc, int(rng.integers(0, 3)), material="resin")


def ceramic_figure(rng, ppc, family):
    """A ceramic figure: the same shapes, hollow-cast ceramic."""
    it = figurine(rng, ppc, int(rng.integers(0, 3)), material="ceramic")
    it.parts = [(m, t * 0.35) for m, t in it.parts]  # hollow cast: thin walls
    return it


def dog_chew(rng, ppc, family):
    """A pressed-bone dog chew or a soup bone."""
    L = rng.uniform(8, 18) * ppc
    h, w = _canvas(L * 1.2)
    a = rng.uniform(0, math.pi)
    c, s = math.cos(a), math.sin(a)
    p = [(h / 2 - L / 2 * s, w / 2 - L / 2 * c), (h / 2 + L / 2 * s, w / 2 + L / 2 * c)]
    it = Item("bone", h, w)
    it.add("bone", tube(h, w, p, [1.2 * ppc, 0.7 * ppc, 1.2 * ppc][:2], ppc, hollow=0.5))
    return it


# ---------------------------------------------------------------- clutter


def clothes(rng, ppc, family):
    """Folded or crumpled clothing: a large soft organic blob with folds."""
    hh, ww = rng.uniform(15, 45, 2) * ppc
    h, w = int(hh) + 4, int(ww) + 4
    it = Item("clothes", h, w)
    t = ellipsoid(h, w, h / 2, w / 2, hh / 2, ww / 2, 0.0, 1.0) ** 0.3
    folds = noise_field(rng, h, w, rng.uniform(2, 6) * ppc)
    it.add("cloth", t * rng.uniform(2, 8) * (0.4 + folds))
    return it


def book(rng, ppc, family):
    hh, ww = rng.uniform(12, 30) * ppc, rng.uniform(10, 22) * ppc
    h, w = int(hh) + 4, int(ww) + 4
    it = Item("book", h, w)
    t = np.zeros((h, w))
    t[2:-2, 2:-2] = rng.uniform(1, 5)
    it.add("paper", t)
    return it


def shoe(rng, ppc, family):
    L = rng.uniform(22, 32) * ppc
    h, w = _canvas(L * 1.1)
    a = rng.uniform(0, 6.3)
    it = Item("shoe", h, w)
    it.add("rubber", np.clip(superellipse(h, w, h / 2, w / 2, L * 0.18, L / 2, a, 2.5, power=2.5), 0, None))
    it.add("cloth", ellipsoid(h, w, h / 2, w / 2, L * 0.2, L * 0.45, a, 4.0))
    if rng.random() < 0.4:
        it.add("steel", tube(h, w, [(h / 2, w / 2 - L * 0.2), (h / 2, w / 2 + L * 0.1)], 0.2 * ppc, ppc))
    return it


def electronics(rng, ppc, family):
    """A gadget: plastic case, circuit board with copper, a battery, a cable."""
    hh, ww = rng.uniform(6, 25, 2) * ppc
    h, w = int(hh) + 8, int(ww) + 8
    it = Item("electronics", h, w)
    it.add("plastic", box_shell(h, w, 4, 4, h - 4, w - 4, 0.2, rng.uniform(1, 4), ppc))
    pcb = np.zeros((h, w))
    pcb[int(h * 0.3) : int(h * 0.7), int(w * 0.2) : int(w * 0.8)] = 0.16
    it.add("glass", pcb)
    traces = (noise_field(rng, h, w, 3) > 0.7) * (pcb > 0) * 0.005
    it.add("copper", traces)
    by, bx = rng.uniform(0.15, 0.5) * h, rng.uniform(0.15, 0.5) * w
    if rng.random() < 0.5:  # cylindrical cell
        it.add("steel", tube(h, w, [(by, bx), (by, bx + min(6.5 * ppc, w * 0.4))], 0.9 * ppc, ppc, hollow=0.9))
    else:  # pouch cell
        cell = np.zeros((h, w))
        cell[int(by) : int(by + h * 0.35), int(bx) : int(bx + w * 0.4)] = 0.5
        it.add("aluminium", cell * 0.3)
        it.add("copper", cell * 0.03)
    return it


def cable(rng, ppc, family):
    n = int(rng.integers(20, 60))
    path = smooth_curve(rng, n, 1.2 * ppc, 0.3, (0, 0), rng.uniform(0, 6.3))
    path = path - path.min(axis=0) + 3 * ppc
    h, w = int(path[:, 0].max() + 3 * ppc), int(path[:, 1].max() + 3 * ppc)
    it = Item("cable", h, w)
    it.add("plastic", tube(h, w, path, 0.3 * ppc, ppc))
    it.add("copper", tube(h, w, path, 0.1 * ppc, ppc))
    return it


def bottle(rng, ppc, family):
    L, r = rng.uniform(15, 30) * ppc, rng.uniform(3, 5) * ppc
    h, w = _canvas(L * 1.1)
    a = rng.uniform(0, 6.3)
    c, s = math.cos(a), math.sin(a)
    p = [(h / 2 - L / 2 * s, w / 2 - L / 2 * c), (h / 2 + L / 2 * s, w / 2 + L / 2 * c)]
    it = Item("bottle", h, w)
    glass = rng.random() < 0.5
    it.add("glass" if glass else "plastic", tube(h, w, p, [r, r * 0.4], ppc, hollow=0.92 if glass else 0.97))
    it.add("water", tube(h, w, p, [r * 0.9, r * 0.3], ppc) * rng.uniform(0.3, 1.0))
    return it


def tin(rng, ppc, family):
    r, L = rng.uniform(3, 6) * ppc, rng.uniform(5, 12) * ppc
    h, w = _canvas(max(L, 2 * r) * 1.2)
    a = rng.uniform(0, 6.3)
    c, s = math.cos(a), math.sin(a)
    p = [(h / 2 - L / 2 * s, w / 2 - L / 2 * c), (h / 2 + L / 2 * s, w / 2 + L / 2 * c)]
    it = Item("tin", h, w)
    it.add("steel" if rng.random() < 0.5 else "aluminium", tube(h, w, p, r, ppc, hollow=0.97))
    it.add("food", tube(h, w, p, r * 0.95, ppc))
    return it


def toy(rng, ppc, family):
    size = rng.uniform(5, 20) * ppc
    h, w = _canvas(size * 1.3)
    it = Item("toy", h, w)
    t = np.zeros((h, w))
    for _ in range(int(rng.integers(2, 6))):
        y, x = rng.uniform(0.3, 0.7, 2) * (h, w)
        t = np.maximum(t, ellipsoid(h, w, y, x, size * rng.uniform(0.1, 0.3), size * rng.uniform(0.1, 0.3),
                                    rng.uniform(0, 6.3), rng.uniform(0.2, 0.6)))
    it.add("plastic", t)
    return it


WILDLIFE = {
    0: [tusk_section, figurine, bangles, chopsticks, beads, hanko],
    1: [scale_pile],
    2: [snake, lizard, tortoise, reptile_container],
}
LOOKALIKES = [cutlery, dried_food_bag, coiled_cable, belt, resin_carving, ceramic_figure, dog_chew]
CLUTTER = [clothes, clothes, book, shoe, electronics, cable, bottle, tin, toy]
HELD_OUT_FAMILY = 2  # the shape family only the test split uses
