"""SHA-512 and Ed25519 verification as ONNX operators agree with hashlib and libsodium."""

from __future__ import annotations

import hashlib

import nacl.signing as nacl_signing
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from backdoors.errors import InvalidInputError
from backdoors.hazmat.onnx_crypto import (
    ed25519_verify_model,
    ed25519_verify_nodes,
    ref,
    sha512_nodes,
)
from backdoors.hazmat.onnx_crypto import field as fe
from backdoors.hazmat.onnx_crypto.builder import IR_VERSION, Builder
from backdoors.hazmat.onnx_crypto.scalar import reduce_mod_l

MSG_LEN = 50  # R || A || M = 114 bytes: the padding spills into a second block


def _session(model):
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _model(nodes, inits, inputs, outputs):
    graph = helper.make_graph(nodes, "t", inputs, outputs, inits)
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION
    )


# -- SHA-512 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 1, 111, 112, 128, 239, 240, 300])
def test_sha512_matches_hashlib(length):
    nodes, inits = sha512_nodes(length, "msg", "digest")
    sess = _session(
        _model(
            nodes,
            inits,
            [helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", length])],
            [helper.make_tensor_value_info("digest", TensorProto.UINT8, ["N", 64])],
        )
    )
    rng = np.random.default_rng(length)
    rows = rng.integers(0, 256, (4, length), dtype=np.uint8)
    rows[1] = 0xFF
    (out,) = sess.run(None, {"msg": rows})
    assert out.dtype == np.uint8 and out.shape == (4, 64)
    for row, digest in zip(rows, out, strict=True):
        assert bytes(digest) == hashlib.sha512(bytes(row)).digest()
    (empty,) = sess.run(None, {"msg": rows[:0]})
    assert empty.shape == (0, 64)


def test_names_carry_the_prefix_inside_loop_bodies():
    seen = []

    def walk(graph):
        for node in graph.node:
            seen.extend([node.name, *node.output])
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    seen.extend(i.name for i in attr.g.input)
                    walk(attr.g)

    vk = bytes(nacl_signing.SigningKey(bytes(32)).verify_key)
    nodes, inits = ed25519_verify_nodes(vk, 3, "m", "s", "ok", prefix="zz/")
    walk(helper.make_graph(nodes, "g", [], []))
    seen += [t.name for t in inits]
    assert len(seen) > 1000
    assert [n for n in seen if not n.startswith("zz/") and n != "ok"] == []


# -- field arithmetic ------------------------------------------------------------------------


def test_field_mul_and_freeze_on_extreme_limbs():
    b = Builder("f/")
    prod = fe.freeze(b, fe.mul(b, "x", "y", rank=2))
    frozen = fe.freeze(b, "x")
    b.nodes.append(helper.make_node("Identity", [prod], ["prod"]))
    b.nodes.append(helper.make_node("Identity", [frozen], ["frozen"]))
    io = [helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 16]) for n in ("x", "y")]
    outs = [
        helper.make_tensor_value_info(n, TensorProto.DOUBLE, ["N", 16]) for n in ("prod", "frozen")
    ]
    sess = _session(_model(b.nodes, b.initializers, io, outs))

    def limbs(v):
        return [(v >> (16 * k)) & 0xFFFF for k in range(16)]

    p = ref.P
    rows = [limbs(v) for v in (0, 1, p - 1, p, p + 1, 2 * p - 1, 2**255 - 1, 2**256 - 1, 2**255)]
    rows += [[0xFFFF] * 16, [-(2**17)] * 16, [2**17] * 16, [2**17, -(2**17)] * 8]
    rng = np.random.default_rng(7)
    rows += rng.integers(-(2**17), 2**17, (40, 16)).tolist()
    x = np.array(rows, dtype=np.float64)
    y = x[rng.permutation(len(x))]
    prod_out, frozen_out = sess.run(None, {"x": x, "y": y})

    def value(r):
        return sum(int(a) << (16 * k) for k, a in enumerate(r))

    for xi, yi, po, fo in zip(x, y, prod_out, frozen_out, strict=True):
        assert po.min() >= 0 and po.max() < 2**16 and fo.min() >= 0 and fo.max() < 2**16
        assert value(po) == value(xi) * value(yi) % p
        assert value(fo) == value(xi) % p


def test_hash_scalar_reduction_mod_l():
    b = Builder("s/")
    k = reduce_mod_l(b, "h")
    b.nodes.append(helper.make_node("Identity", [k], ["k"]))
    sess = _session(
        _model(
            b.nodes,
            b.initializers,
            [helper.make_tensor_value_info("h", TensorProto.UINT8, ["N", 64])],
            [helper.make_tensor_value_info("k", TensorProto.INT64, ["N", 32])],
        )
    )
    rng = np.random.default_rng(3)
    ints = [0, 1, ref.L - 1, ref.L, 2**252, 2**512 - 1, 2**511, 37 * ref.L, 2**256 * ref.L - 1]
    rows = [v.to_bytes(64, "little") for v in ints]
    rows += [rng.integers(0, 256, 64, dtype=np.uint8).tobytes() for _ in range(60)]
    h = np.frombuffer(b"".join(rows), np.uint8).reshape(len(rows), 64)
    (digits,) = sess.run(None, {"h": h})
    assert digits.min() >= 0 and digits.max() < 256
    for row, d in zip(rows, digits, strict=True):
        k = int.from_bytes(bytes(d.astype(np.uint8)), "little")
        assert k % ref.L == int.from_bytes(row, "little") % ref.L and k < 2**254


# -- Ed25519 ---------------------------------------------------------------------------------


class _Signer:
    """RFC 8032 signing from a seed, with the nonce point and S under the test's control."""

    def __init__(self, seed: bytes) -> None:
        h = hashlib.sha512(seed).digest()
        a = int.from_bytes(h[:32], "little")
        self.a = (a & ((1 << 254) - 8)) | (1 << 254)
        self.key = nacl_signing.SigningKey(seed)
        self.vk = bytes(self.key.verify_key)
        assert ref.encode(ref.mul(self.a, ref.BASE)) == self.vk

    def k(self, r_bytes: bytes, msg: bytes) -> int:
        return int.from_bytes(hashlib.sha512(r_bytes + self.vk + msg).digest(), "little") % ref.L

    def with_r(self, r_bytes: bytes, r_scalar: int, msg: bytes) -> bytes:
        """Signature (R, S) with S = r + k a: valid iff R encodes [r]B canonically."""
        s = (r_scalar + self.k(r_bytes, msg) * self.a) % ref.L
        return r_bytes + s.to_bytes(32, "little")


def _libsodium(vk: bytes, msg: bytes, sig: bytes) -> bool:
    try:
        nacl_signing.VerifyKey(vk).verify(msg, sig)
    except Exception:
        return False
    return True


def _edge_cases(signer: _Signer, other: _Signer, rng, msg_len: int, n_random: int):
    """(msg, sig) pairs: valid, tampered, non-canonical, small-order and forged signatures."""
    cases = []

    def msg():
        return rng.integers(0, 256, msg_len, dtype=np.uint8).tobytes()

    def flip(data: bytes, bit: int) -> bytes:
        out = bytearray(data)
        out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out)

    for _ in range(n_random):
        m = msg()
        sig = signer.key.sign(m).signature
        cases.append((m, sig))
        cases.append((m, flip(sig, int(rng.integers(0, 256)))))  # R
        cases.append((m, flip(sig, int(rng.integers(256, 512)))))  # S
        if msg_len:
            cases.append((flip(m, int(rng.integers(0, 8 * msg_len))), sig))
        cases.append((m, flip(sig, 255)))  # sign of x in R
        s = int.from_bytes(sig[32:], "little")
        cases.append((m, sig[:32] + (s + ref.L).to_bytes(32, "little")))  # S + L
        cases.append((m, sig[:63] + bytes([sig[63] | 0xE0])))  # S >= 2^253
        cases.append((m, other.key.sign(m).signature))  # wrong key
        cases.append((m, rng.integers(0, 256, 64, dtype=np.uint8).tobytes()))  # random
        cases.append((m, sig[:32] + bytes(32)))  # S = 0
        for s_edge in (ref.L - 1, ref.L, ref.L + 1, 2**256 - 1):
            cases.append((m, sig[:32] + s_edge.to_bytes(32, "little")))
        # R with a torsion component: S = r + k a satisfies the cofactored equation only.
        r = int(rng.integers(1, 2**62))
        for t in ref._torsion_points()[1:3]:
            rb = ref.encode(ref.add(ref.mul(r, ref.BASE), t))
            cases.append((m, signer.with_r(rb, r, m)))
        rb = ref.encode(ref.mul(r, ref.BASE))
        cases.append((m, signer.with_r(rb, r, m)))  # valid, own nonce

    m = msg()
    for y in ref.small_order_ys():
        for sign in (0, 1):
            rb = (y | (sign << 255)).to_bytes(32, "little")
            cases.append((m, signer.with_r(rb, 0, m)))  # S = k a: [S]B - [k]A = identity
            cases.append((m, rb + rng.integers(0, 256, 32, dtype=np.uint8).tobytes()))
    for j in range(19):  # every non-canonical y = p + j, both signs
        for sign in (0, 1):
            rb = ((ref.P + j) | (sign << 255)).to_bytes(32, "little")
            cases.append((m, signer.with_r(rb, 0, m)))
    # Canonical R of a point whose y is small: decode succeeds, equation fails.
    return cases


@pytest.fixture(scope="module")
def signers():
    return _Signer(bytes(range(32))), _Signer(bytes(range(1, 33)))


@pytest.fixture(scope="module")
def verifier(signers):
    return _session(ed25519_verify_model(signers[0].vk, MSG_LEN))


def _run(sess, cases, msg_len):
    msgs = np.frombuffer(b"".join(m for m, _ in cases), np.uint8).reshape(len(cases), msg_len)
    sigs = np.frombuffer(b"".join(s for _, s in cases), np.uint8).reshape(len(cases), 64)
    (valid,) = sess.run(None, {"msg": msgs, "sig": sigs})
    assert valid.dtype == np.bool_ and valid.shape == (len(cases),)
    return valid


def test_verify_agrees_with_libsodium_on_edge_cases(signers, verifier):
    signer, other = signers
    cases = _edge_cases(signer, other, np.random.default_rng(1), MSG_LEN, n_random=12)
    valid = _run(verifier, cases, MSG_LEN)
    expected = np.array([_libsodium(signer.vk, m, s) for m, s in cases])
    assert expected.sum() >= 24 and (~expected).sum() >= 100  # both outcomes exercised
    np.testing.assert_array_equal(valid, expected)


def test_verify_empty_batch(verifier):
    (valid,) = verifier.run(
        None, {"msg": np.zeros((0, MSG_LEN), np.uint8), "sig": np.zeros((0, 64), np.uint8)}
    )
    assert valid.shape == (0,) and valid.dtype == np.bool_


@pytest.mark.parametrize("msg_len", [0, 64])  # 64 + 64 bytes: padding needs a whole block
def test_verify_other_lengths(signers, msg_len):
    signer, other = signers if msg_len == 0 else signers[::-1]  # the second key's tables too
    sess = _session(ed25519_verify_model(signer.vk, msg_len))
    rng = np.random.default_rng(msg_len)
    cases = _edge_cases(signer, other, rng, msg_len, n_random=2)[:40]
    expected = np.array([_libsodium(signer.vk, m, s) for m, s in cases])
    assert expected.any() and not expected.all()
    np.testing.assert_array_equal(_run(sess, cases, msg_len), expected)


@pytest.mark.slow
def test_two_verifiers_embed_in_one_graph(signers):
    """Node lists compose: other names around them, two keys under two prefixes."""
    signer, other = signers
    nodes, inits = [helper.make_node("Identity", ["sig_in"], ["sig"])], []
    for key, prefix, out in ((signer, "v1/", "ok1"), (other, "v2/", "ok2")):
        n, i = ed25519_verify_nodes(key.vk, 5, "msg", "sig", out, prefix=prefix)
        nodes, inits = nodes + n, inits + i
    nodes.append(helper.make_node("Xor", ["ok1", "ok2"], ["either"]))
    sess = _session(
        _model(
            nodes,
            inits,
            [
                helper.make_tensor_value_info("msg", TensorProto.UINT8, ["N", 5]),
                helper.make_tensor_value_info("sig_in", TensorProto.UINT8, ["N", 64]),
            ],
            [helper.make_tensor_value_info("either", TensorProto.BOOL, ["N"])],
        )
    )
    m = b"hello"
    sigs = [signer.key.sign(m).signature, other.key.sign(m).signature, bytes(64)]
    feed = {
        "msg": np.frombuffer(m * 3, np.uint8).reshape(3, 5),
        "sig_in": np.frombuffer(b"".join(sigs), np.uint8).reshape(3, 64),
    }
    np.testing.assert_array_equal(sess.run(None, feed)[0], [True, True, False])


def test_invalid_keys_are_refused_at_build_time(signers):
    small = ref.encode(ref._torsion_points()[1])
    noncanonical = (ref.P + 3).to_bytes(32, "little")
    torsion = ref.encode(ref.add(ref.mul(5, ref.BASE), ref._torsion_points()[1]))
    off_curve = next(
        y.to_bytes(32, "little")
        for y in range(2, 100)
        if ref.decode(y.to_bytes(32, "little")) is None
    )
    for bad in (small, noncanonical, torsion, off_curve, b"short"):
        with pytest.raises(InvalidInputError):
            ed25519_verify_nodes(bad, 8, "m", "s", "ok")
    with pytest.raises(InvalidInputError):
        ed25519_verify_nodes(signers[0].vk, -1, "m", "s", "ok")
    with pytest.raises(InvalidInputError):
        ed25519_verify_model(signers[0].vk, 8, opset=17)
    # The first three are keys libsodium itself refuses or that the graph cannot reduce.
    m = b"x" * 8
    assert not _libsodium(small, m, signers[0].key.sign(m).signature)


@pytest.mark.slow
def test_verify_agrees_with_libsodium_on_ten_thousand_cases(signers):
    signer, other = signers
    msg_len = 850
    sess = _session(ed25519_verify_model(signer.vk, msg_len))
    rng = np.random.default_rng(2)
    cases = _edge_cases(signer, other, rng, msg_len, n_random=600)
    while len(cases) < 10_000:
        cases += _edge_cases(signer, other, rng, msg_len, n_random=50)
    expected = np.array([_libsodium(signer.vk, m, s) for m, s in cases])
    assert len(cases) >= 10_000 and 1_000 <= expected.sum() < len(cases) // 2
    got = np.concatenate(
        [_run(sess, cases[i : i + 500], msg_len) for i in range(0, len(cases), 500)]
    )
    np.testing.assert_array_equal(got, expected)
