"""Thickness maps (cm) of simple solids seen from above, on a local pixel grid.

Every function returns a float array of shape (h, w) holding the path length of the X-ray beam
through the solid at each pixel; `ppc` is pixels per centimetre. Rotations are built into the
coordinates, so no image is ever resampled.
"""

import math

import numpy as np


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x)."""
    return np.mgrid[0:h, 0:w].astype(np.float64) + 0.5


def ellipsoid(h, w, cy, cx, ry, rx, angle, depth_cm):
    """An ellipsoid (radii in px, depth = thickness at the centre in cm) seen from above."""
    y, x = grid(h, w)
    c, s = math.cos(angle), math.sin(angle)
    u = ((x - cx) * c + (y - cy) * s) / max(rx, 0.5)
    v = (-(x - cx) * s + (y - cy) * c) / max(ry, 0.5)
    q = 1.0 - u * u - v * v
    return depth_cm * np.sqrt(np.clip(q, 0.0, None))


def superellipse(h, w, cy, cx, ry, rx, angle, depth_cm, power=4.0, taper=0.0):
    """A flat plate with a superellipse outline; `taper` > 0 narrows it towards +v (a shield)."""
    y, x = grid(h, w)
    c, s = math.cos(angle), math.sin(angle)
    u = ((x - cx) * c + (y - cy) * s) / max(rx, 0.5)
    v = (-(x - cx) * s + (y - cy) * c) / max(ry, 0.5)
    u = u / np.clip(1.0 - taper * (v + 1.0) / 2.0, 0.15, None)
    q = np.abs(u) ** power + np.abs(v) ** power
    edge = np.clip((1.0 - q) * 6.0, 0.0, 1.0)  # soft rim, a few px wide
    return depth_cm * edge


def tube(h, w, path, radius, ppc, hollow=0.0):
    """A tube of varying radius (px) along a polyline `path` (N x 2, y/x px). `hollow` is the
    inner radius as a fraction of the outer (a pipe, a pulp cavity)."""
    y, x = grid(h, w)
    best = np.zeros((h, w))
    path = np.asarray(path, np.float64)
    radius = np.broadcast_to(np.asarray(radius, np.float64), (len(path),))
    rmax = float(radius.max()) + 2
    for i in range(len(path) - 1):
        (y0, x0), (y1, x1) = path[i], path[i + 1]
        ys, ye = int(max(0, min(y0, y1) - rmax)), int(min(h, max(y0, y1) + rmax + 1))
        xs, xe = int(max(0, min(x0, x1) - rmax)), int(min(w, max(x0, x1) + rmax + 1))
        if ys >= ye or xs >= xe:
            continue
        py, px = y[ys:ye, xs:xe], x[ys:ye, xs:xe]
        dy, dx = y1 - y0, x1 - x0
        L2 = dy * dy + dx * dx + 1e-9
        t = np.clip(((py - y0) * dy + (px - x0) * dx) / L2, 0.0, 1.0)
        d2 = (py - y0 - t * dy) ** 2 + (px - x0 - t * dx) ** 2
        r = radius[i] + t * (radius[i + 1] - radius[i])
        th = 2.0 * np.sqrt(np.clip(r * r - d2, 0.0, None))
        if hollow > 0:
            ri = r * hollow
            th = th - 2.0 * np.sqrt(np.clip(ri * ri - d2, 0.0, None))
        np.maximum(best[ys:ye, xs:xe], th, out=best[ys:ye, xs:xe])
    return best / ppc


def ring(h, w, cy, cx, r, r_tube_px, ppc, squash=1.0, angle=0.0):
    """A torus (a bangle) seen at a tilt: `squash` < 1 flattens the circle to an ellipse."""
    n = max(24, int(2 * math.pi * r / 3))
    t = np.linspace(0, 2 * math.pi, n + 1)
    c, s = math.cos(angle), math.sin(angle)
    u, v = r * np.cos(t), r * squash * np.sin(t)
    path = np.stack([cy + u * s + v * c, cx + u * c - v * s], axis=1)
    return tube(h, w, path, r_tube_px, ppc)


def box_shell(h, w, y0, x0, y1, x1, wall_cm, depth_cm, ppc):
    """A closed box (cardboard, a plastic case) seen from above: top and bottom sheets everywhere,
    the side walls seen edge-on along the outline."""
    y, x = grid(h, w)
    inside = (y >= y0) & (y < y1) & (x >= x0) & (x < x1)
    wall_px = max(1.0, wall_cm * ppc)
    edge = inside & (
        (y - y0 < wall_px) | (y1 - y < wall_px) | (x - x0 < wall_px) | (x1 - x < wall_px)
    )
    return np.where(inside, 2 * wall_cm, 0.0) + np.where(edge, depth_cm, 0.0)


def smooth_curve(rng, n, step, turn, start, heading):
    """A random walk with momentum: n points, `step` px apart, turning up to `turn` rad per step."""
    pts = [np.array(start, np.float64)]
    a, da = heading, 0.0
    for _ in range(n - 1):
        da = 0.8 * da + rng.normal(0, turn)
        a += da
        pts.append(pts[-1] + step * np.array([math.sin(a), math.cos(a)]))
    return np.array(pts)


def spiral(cy, cx, r0, r1, turns, angle0, n=None):
    """An Archimedean spiral from radius r0 to r1 (px)."""
    n = n or max(30, int(turns * 40))
    t = np.linspace(0, 1, n)
    a = angle0 + t * turns * 2 * math.pi
    r = r0 + (r1 - r0) * t
    return np.stack([cy + r * np.sin(a), cx + r * np.cos(a)], axis=1)


def noise_field(rng, h, w, scale_px):
    """Smooth random field in [0, 1], features about `scale_px` wide (upsampled white noise)."""
    gh, gw = max(2, int(h / scale_px) + 2), max(2, int(w / scale_px) + 2)
    g = rng.random((gh, gw))
    yi = np.linspace(0, gh - 1.001, h)
    xi = np.linspace(0, gw - 1.001, w)
    y0, x0 = yi.astype(int), xi.astype(int)
    fy, fx = (yi - y0)[:, None], (xi - x0)[None, :]
    a = g[y0][:, x0]
    b = g[y0][:, x0 + 1]
    c = g[y0 + 1][:, x0]
    d = g[y0 + 1][:, x0 + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
