"""Build-time Ed25519 arithmetic in Python integers (RFC 8032, Section 5.1).

Used to bake constants into the graph (window tables, limb constants) and to validate the
fixed public key the way libsodium does before it verifies anything.
"""

from __future__ import annotations

from backdoors.errors import InvalidInputError

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)

Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, XY = ZT
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    """Complete twisted-Edwards addition (a = -1), extended coordinates."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * D * t1 * t2 % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def mul(k: int, p: Point) -> Point:
    r = IDENTITY
    while k:
        if k & 1:
            r = add(r, p)
        p = add(p, p)
        k >>= 1
    return r


def affine(p: Point) -> tuple[int, int]:
    zi = pow(p[2], -1, P)
    return p[0] * zi % P, p[1] * zi % P


def is_identity(p: Point) -> bool:
    return p[0] % P == 0 and (p[1] - p[2]) % P == 0


def encode(p: Point) -> bytes:
    x, y = affine(p)
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def decode(s: bytes) -> Point | None:
    """RFC 8032 5.1.3 decoding, but (like libsodium) y is read from 255 bits without y < p."""
    v = int.from_bytes(s, "little")
    y, sign = (v & ((1 << 255) - 1)) % P, v >> 255
    u, w = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(w, P - 2, P) % P
    r = pow(x, (P + 3) // 8, P)
    if (r * r - x) % P:
        r = r * SQRT_M1 % P
    if (r * r - x) % P:
        return None
    if r & 1 != sign:
        r = -r % P
    return (r, y, 1, r * y % P)


_BY = 4 * pow(5, P - 2, P) % P
BASE: Point = decode(_BY.to_bytes(32, "little"))  # type: ignore[assignment]


def small_order_ys() -> list[int]:
    """The 7 values of the 255-bit y field libsodium's ge25519_has_small_order rejects.

    The y of the 8 points of order dividing 8 (5 distinct values) and the non-canonical
    y = p, p + 1 (the sign bit is ignored).
    """
    pts = _torsion_points()
    ys = sorted({affine(t)[1] for t in pts})
    return [*ys, P, P + 1]


def _torsion_points() -> list[Point]:
    """The 8 points of order dividing 8: [L]Q for any Q with a full torsion component."""
    for cand in range(2, 200):
        q = decode(cand.to_bytes(32, "little"))
        if q is None:
            continue
        t = mul(L, q)
        pts, cur = [], IDENTITY
        for _ in range(8):
            pts.append(cur)
            cur = add(cur, t)
        if len({affine(x) for x in pts}) == 8:
            return pts
    raise AssertionError("no generator of the torsion subgroup found")


def is_canonical_y(s: bytes) -> bool:
    """libsodium ge25519_is_canonical: the 255-bit y field is < p."""
    return (int.from_bytes(s, "little") & ((1 << 255) - 1)) < P


def has_small_order_bytes(s: bytes) -> bool:
    return (int.from_bytes(s, "little") & ((1 << 255) - 1)) in set(small_order_ys())


def validate_public_key(vk: bytes) -> Point:
    """The point A of a public key libsodium would use, or InvalidInputError.

    libsodium rejects every signature for a key with a non-canonical encoding, a small-order
    encoding, or no point. The graph computes [k](-A) for some k = h (mod L), not necessarily
    h mod L itself, which equals libsodium's [h mod L](-A) only when [L]A is the identity, so
    keys with a torsion component are refused too (key generation never makes one).
    """
    if not isinstance(vk, bytes | bytearray) or len(vk) != 32:
        raise InvalidInputError("verify_key must be 32 bytes")
    vk = bytes(vk)
    if not is_canonical_y(vk):
        raise InvalidInputError("verify_key is a non-canonical point encoding")
    if has_small_order_bytes(vk):
        raise InvalidInputError("verify_key is a point of small order")
    a = decode(vk)
    if a is None:
        raise InvalidInputError("verify_key is not a point of the curve")
    if not is_identity(mul(L, a)):
        raise InvalidInputError("verify_key is not in the prime-order subgroup")
    return a
