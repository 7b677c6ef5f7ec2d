"""Dual-energy X-ray physics for synthetic parcel scans.

Every object is a thickness map (cm) of one material. A scanner measures transmission at a low and
a high energy; each follows Beer-Lambert, T_E = exp(-sum_m mu_m(E) * t_m), so stacked objects
multiply their transmissions. Linear attenuation coefficients below are mass attenuation
coefficients (NIST XCOM / X-ray mass attenuation tables, read at 50 keV for "low" and 100 keV for
"high", the effective energies of a 140-160 kVp dual-energy baggage scanner) times a typical
density. Organic matter attenuates the two energies almost alike (ratio ~1.3), aluminium, glass and
bone/dentine about twice as much at low energy, iron and copper five times: scanners colour by
that ratio (orange organic, green mixed, blue metal) and darken by the total attenuation.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Material:
    """Linear attenuation (1/cm) at the low and high effective energies."""

    name: str
    mu_low: float
    mu_high: float


def _m(name: str, mass_low: float, mass_high: float, density: float) -> Material:
    return Material(name, mass_low * density, mass_high * density)


# mass attenuation (cm^2/g) at 50 keV, 100 keV; density (g/cm^3)
MATERIALS = {
    m.name: m
    for m in [
        _m("cloth", 0.215, 0.163, 0.35),  # folded clothing, air included
        _m("paper", 0.215, 0.163, 0.80),
        _m("food", 0.225, 0.168, 0.90),  # dried food, fruit, meat: water-like
        _m("plastic", 0.200, 0.163, 1.05),
        _m("rubber", 0.230, 0.165, 1.20),
        _m("resin", 0.210, 0.165, 1.20),
        _m("water", 0.227, 0.171, 1.00),
        _m("tissue", 0.226, 0.169, 1.05),  # soft tissue of a live animal
        _m("keratin", 0.230, 0.166, 1.30),  # pangolin scales, tortoise scutes, horn
        _m("bone", 0.424, 0.186, 1.92),  # cortical bone
        _m("dentine", 0.460, 0.190, 1.95),  # ivory: dentine, slightly more mineral than bone
        _m("glass", 0.368, 0.169, 2.50),
        _m("ceramic", 0.400, 0.175, 2.40),
        _m("aluminium", 0.368, 0.170, 2.70),
        _m("steel", 1.958, 0.372, 7.87),
        _m("copper", 2.610, 0.458, 8.96),
    ]
}


class Scene:
    """Accumulates line integrals of attenuation at both energies over a canvas."""

    def __init__(self, height: int, width: int):
        self.low = np.zeros((height, width), np.float64)
        self.high = np.zeros((height, width), np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        return self.low.shape

    def add(self, thickness: np.ndarray, material: str, y0: int, x0: int) -> None:
        """Adds a thickness map (cm) of `material` with its top-left corner at (y0, x0), clipped."""
        m = MATERIALS[material]
        h, w = thickness.shape
        H, W = self.low.shape
        ys, xs = max(0, y0), max(0, x0)
        ye, xe = min(H, y0 + h), min(W, x0 + w)
        if ys >= ye or xs >= xe:
            return
        t = thickness[ys - y0 : ye - y0, xs - x0 : xe - x0]
        self.low[ys:ye, xs:xe] += m.mu_low * t
        self.high[ys:ye, xs:xe] += m.mu_high * t

    def transmissions(
        self, rng: np.random.Generator, blur: float = 0.7, noise: float = 0.008, noise_outside: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        """Detector readings at both energies: blurred by the detector's spread, with photon noise
        that grows as fewer photons get through. `noise_outside=False` keeps the noise inside the
        objects only (the same random draws), for projection onto a real scan, which has its own."""
        out = []
        for a in (self.low, self.high):
            b = ndimage.gaussian_filter(a, blur)
            t = np.exp(-b)
            n = rng.normal(0.0, noise, t.shape) * np.sqrt(t)
            t = t + n if noise_outside else np.where(b > 1e-3, t + n, t)
            out.append(np.clip(t, 1e-4, 1.0))
        return out[0], out[1]


# colour by low/high attenuation ratio: organic ~1.3, mixed (Al, glass, bone) ~2.2, metal >= 5
_RATIO = np.array([1.0, 1.45, 1.9, 2.6, 3.6, 5.0])
_HUE = np.array(
    [
        [235, 140, 40],  # organic: orange
        [235, 140, 40],
        [150, 175, 50],  # organic/mixed: yellow-green
        [60, 170, 70],  # mixed: green
        [40, 120, 190],  # metal: blue
        [30, 80, 190],
    ],
    np.float64,
)


def pseudo_colour(t_low: np.ndarray, t_high: np.ndarray) -> np.ndarray:
    """The scanner's display: hue from the low/high attenuation ratio, saturation and darkness
    from the attenuation itself; nothing in the beam is white. Returns uint8 H x W x 3."""
    a_low, a_high = -np.log(t_low), -np.log(t_high)
    ratio = a_low / np.maximum(a_high, 1e-3)
    # where little is absorbed the ratio is noise: pull it towards organic
    weight = np.clip(a_high / 0.08, 0.0, 1.0)
    ratio = 1.3 + (ratio - 1.3) * weight
    hue = np.stack([np.interp(ratio, _RATIO, _HUE[:, c]) for c in range(3)], axis=-1)
    sat = np.clip(a_high * 2.2, 0.0, 1.0)[..., None]
    shade = (0.12 + 0.88 * t_high**0.55)[..., None]
    rgb = (255.0 * (1 - sat) + hue * sat) * np.clip(shade * 1.35, 0, 1.0)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def grayscale16(t_low: np.ndarray, t_high: np.ndarray) -> np.ndarray:
    """The single-channel image a grayscale scanner stores: fused transmission, 16 bits."""
    return np.clip(np.rint(65535.0 * np.sqrt(t_low * t_high)), 0, 65535).astype(np.uint16)
