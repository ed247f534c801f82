import os

import pytest
import torch

from vsa.common import bundle as bundle_mod
from vsa.common.bundle import BundleError
from vsa.common.metrics import psnr
from vsa.common.resample import downscale, to_tensor, upscale


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/vsa-pwned",))


def test_save_load_round_trip(trained_bundle, tmp_path):
    path, bundle = trained_bundle
    loaded = bundle_mod.load(path)
    assert loaded.config == bundle.config
    assert loaded.meta["source"] == "person_signing_webcam.mp4" and loaded.meta["objective"] == "restore"
    assert "train_psnr" in loaded.meta
    for key, value in bundle.state_dict.items():
        assert torch.equal(loaded.state_dict[key], value)


def test_pickle_bearing_file_is_refused_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "vsa-ae", "payload": Evil()}, path)
    with pytest.raises(BundleError, match="pickled objects"):
        bundle_mod.load(str(path))
    assert not os.path.exists("/tmp/vsa-pwned")


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_files_get_a_clear_error(trained_bundle, tmp_path, damage):
    data = open(trained_bundle[0], "rb").read()
    data = {"truncate": data[: len(data) // 2], "garbage": os.urandom(4096), "empty": b""}[damage]
    path = tmp_path / "bad.pt"
    path.write_bytes(data)
    with pytest.raises(BundleError, match="not a readable torch checkpoint"):
        bundle_mod.load(str(path))


def test_flipped_weight_byte_fails_the_checksum(trained_bundle, tmp_path):
    _, bundle = trained_bundle
    path = str(tmp_path / "m.pt")
    bundle_mod.save(bundle_mod.Bundle(bundle.config, bundle.state_dict, bundle.meta), path)
    data = torch.load(path, weights_only=True)
    key = next(k for k, v in data["state_dict"].items() if v.is_floating_point())
    data["state_dict"][key] = data["state_dict"][key].clone()
    data["state_dict"][key].view(-1)[0] += 1.0
    torch.save(data, path)
    with pytest.raises(BundleError, match="SHA-256"):
        bundle_mod.load(path)


def test_foreign_checkpoint_and_missing_file(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(BundleError, match="not a vsa model bundle"):
        bundle_mod.load(str(path))
    with pytest.raises(BundleError, match="not found"):
        bundle_mod.load(str(tmp_path / "absent.pt"))


def test_wrong_shapes_are_refused(trained_bundle, tmp_path):
    _, bundle = trained_bundle
    data = {"format": "vsa-ae", "version": 1, "config": {"k": 8, "preset": "x"}, "state_dict": bundle.state_dict,
            "meta": {}}
    data["sha256"] = bundle_mod.content_digest(data)
    path = tmp_path / "mismatch.pt"
    torch.save(data, path)
    with pytest.raises(BundleError, match="do not fit"):
        bundle_mod.load(str(path))


def test_wire_form_round_trip_is_compact_and_hashed(trained_bundle):
    _, bundle = trained_bundle
    wire = bundle_mod.to_wire(bundle)
    fp32_bytes = sum(t.numel() * 4 for t in bundle.state_dict.values())
    assert len(wire) < fp32_bytes / 3
    restored = bundle_mod.from_wire(wire, bundle_mod.sha256(wire))
    assert restored.config == bundle.config
    for key, value in bundle.state_dict.items():
        if value.is_floating_point():
            tolerance = value.abs().max() / 127 + 1e-3 * value.abs().max()
            assert (restored.state_dict[key] - value).abs().max() <= tolerance, key
    with pytest.raises(BundleError, match="SHA-256"):
        bundle_mod.from_wire(wire, b"\x00" * 32)


@pytest.mark.parametrize("damage", [lambda w: w[:-10], lambda w: w[:50] + b"\x00" * 20 + w[70:], lambda w: b"zz"])
def test_corrupt_wire_gets_bundle_error(trained_bundle, damage):
    wire = bundle_mod.to_wire(trained_bundle[1])
    with pytest.raises(BundleError):
        bundle_mod.from_wire(damage(wire))


def test_quantised_model_decodes_within_0_2_db_of_fp32(trained_bundle, small_frames):
    _, bundle = trained_bundle
    fp32 = bundle.build()
    int8 = bundle_mod.from_wire(bundle_mod.to_wire(bundle)).build()
    x = to_tensor(small_frames[:16])
    inputs = upscale(downscale(x, 4), x.shape[-2:])
    with torch.inference_mode():
        p32 = psnr(fp32(inputs).clamp(0, 1), x).mean()
        p8 = psnr(int8(inputs).clamp(0, 1), x).mean()
    assert abs(float(p32 - p8)) < 0.2, (float(p32), float(p8))


# --- the wire form bounds what it makes a receiver allocate -------------------------------------------


def _hostile_wire(kind: str, config: dict, tensors: list, body: bytes = b"") -> bytes:
    import struct

    import msgpack
    import zstandard

    header = msgpack.packb({"kind": kind, "config": config, "meta": {}, "tensors": tensors}, use_bin_type=True)
    head = zstandard.ZstdCompressor().compress(header)
    return b"VSAW\x02" + struct.pack(">I", len(head)) + head + zstandard.ZstdCompressor().compress(body)


def test_a_tiny_blob_naming_a_giant_network_is_refused_before_allocating():
    """200-odd bytes that describe a 15-billion-parameter INR-V: refused on the config alone."""
    wire = _hostile_wire("inrv", {"code_dim": 64, "width": 1024, "depth": 8, "hyper_width": 2048, "xy_freqs": 7,
                                  "t_freqs": 4, "clip_frames": 16}, [])
    assert len(wire) < 300
    with pytest.raises(BundleError, match="parameters; vsa accepts at most"):
        bundle_mod.from_wire(wire)


def test_a_body_that_decompresses_past_its_directory_is_refused(trained_bundle):
    """The body may hold exactly the bytes the directory implies: a zstd bomb stops at that bound."""
    _, bundle = trained_bundle
    header, _ = bundle_mod.read_header(bundle_mod.to_wire(bundle))
    bomb = _hostile_wire(header["kind"], header["config"], header["tensors"], body=b"\x00" * (64 << 20))
    assert len(bomb) < 10_000
    with pytest.raises(BundleError, match="decompresses to more than"):
        bundle_mod.from_wire(bomb)


# --- deltas against a base -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_and_tuned(sr_bundles):
    _, base_wire, tuned = sr_bundles
    return base_wire, tuned


def test_a_delta_round_trips_within_0_2_db_and_costs_a_fraction(base_and_tuned, small_frames):
    from vsa.common.examples import code_lowres
    from vsa.receiver.reconstruct import Reconstructor

    base_wire, tuned = base_and_tuned
    delta = bundle_mod.to_wire(tuned)
    whole = bundle_mod.to_wire(tuned, full=True)
    assert bundle_mod.base_of(delta) == bundle_mod.sha256(base_wire) and bundle_mod.base_of(whole) is None
    # Only the trained scale's branch moved: the other one costs nothing, and the whole is smaller.
    codings = {e["name"]: e["coding"] for e in bundle_mod.read_header(delta)[0]["tensors"]}
    assert all(c == "same" for name, c in codings.items() if name.startswith("branches.x8.")), codings
    assert any(c in ("d8", "d16") for name, c in codings.items() if name.startswith("branches.x4."))
    assert len(delta) < len(whole), (len(delta), len(whole))
    restored = bundle_mod.from_wire(delta, base_lookup={bundle_mod.sha256(base_wire): base_wire}.get)
    frames = small_frames[24:40]
    low = to_tensor(code_lowres(frames, 4))
    ref = to_tensor(frames)
    scores = []
    for bundle in (tuned, restored):
        rec = Reconstructor(bundle.build(), tuple(frames.shape[1:3]), scale=4, crf=20)
        scores.append(float(psnr(rec.reproject(low).frames, ref).mean()))
    assert abs(scores[0] - scores[1]) < 0.2, scores


def test_a_delta_needs_its_own_base(base_and_tuned, trained_bundle):
    base_wire, tuned = base_and_tuned
    delta = bundle_mod.to_wire(tuned)
    with pytest.raises(BundleError, match="not available here"):
        bundle_mod.from_wire(delta)
    other = bundle_mod.to_wire(trained_bundle[1])  # a whole model, but not the one the delta was made against
    with pytest.raises(BundleError, match="the delta was made against"):
        bundle_mod.from_wire(delta, base_lookup=lambda sha: other)


def test_a_delta_for_one_scale_leaves_the_other_branches_at_the_base(base_and_tuned):
    base_wire, tuned = base_and_tuned
    lookup = {bundle_mod.sha256(base_wire): base_wire}.get
    base = bundle_mod.from_wire(base_wire)
    # Move the scale-8 branch too, as fine-tuning at every scale does.
    moved = dict(tuned.state_dict)
    for name in moved:
        if name.startswith("branches.x8.") and moved[name].is_floating_point():
            moved[name] = moved[name] + 0.05 * torch.randn_like(moved[name])
    tuned8 = bundle_mod.Bundle(tuned.config, moved, tuned.meta, base_wire=base_wire)
    everything, for4 = bundle_mod.to_wire(tuned8), bundle_mod.to_wire(tuned8, scale=4)
    assert len(for4) < len(everything), (len(for4), len(everything))
    restored = bundle_mod.from_wire(for4, base_lookup=lookup).state_dict
    whole = bundle_mod.from_wire(everything, base_lookup=lookup).state_dict
    for name, value in restored.items():
        if name.startswith("branches.x8."):
            assert torch.equal(value, base.state_dict[name]), name  # what a scale-4 stream never runs
        else:
            assert torch.equal(value, whole[name]), name  # what it runs: as in the delta of everything
