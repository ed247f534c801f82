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
