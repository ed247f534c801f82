"""The sr architecture: an identity when untrained, and its inference shortcuts equal the plain network."""

import pytest
import torch

from vsa.common import registry
from vsa.common.resample import upscale
from vsa.common.srnet import SRConfig, SRNet, crf_input


@pytest.fixture
def net():
    torch.manual_seed(0)
    model = SRNet(SRConfig(scales=(2, 4, 8), channels=8))
    with torch.no_grad():
        for p in model.parameters():  # random everywhere, so every term of the network shows
            p.normal_(0, 0.1)
    return model.eval()


def test_an_untrained_network_returns_its_input():
    """The residual starts at zero: before training, sr is bicubic upsampling, never worse."""
    model = SRNet(SRConfig(scales=(4,), channels=8))
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(model(x, 4), x, atol=1e-6)


@pytest.mark.parametrize("crf", [20, 36, 0])
def test_the_specialised_branch_computes_the_same_frames(net, crf):
    """Folding the crf and the input centring into the weights, and the shortcuts, change nothing."""
    branch = net.branch(4)
    branch.crf = crf_input(crf)
    fast = registry.get("sr").for_inference(net, scale=4, crf=crf)
    low = torch.rand(2, 3, 16, 24)
    x = upscale(low, (64, 96))
    with torch.no_grad():
        plain = branch.decode(branch.encode(x))
        assert torch.allclose(fast.decode(fast.encode(x)), plain, atol=1e-5)
        # Upsampling and unshuffling in one convolution, straight from the low-res frame.
        assert torch.allclose(fast.encode_lowres(low, (64, 96)), fast.encode(x), atol=1e-5)
        # A second pass without the shuffle round trip.
        twice = branch.encode(branch.decode(branch.encode(x)).clamp(0, 1))
        assert torch.allclose(fast.recode(fast.encode(x)), twice, atol=1e-5)


def test_each_scale_has_its_own_branch_and_others_use_the_nearest(net, caplog):
    assert net.branch(8) is net.branches["x8"] and net.branch(2) is not net.branch(4)
    with caplog.at_level("WARNING"):
        assert net.branch(16) is net.branches["x8"]
    assert "no branch for scale 16" in caplog.text


def test_a_stream_at_another_scale_skips_the_shortcut(net):
    fast = registry.get("sr").for_inference(net, scale=8)
    assert fast.encode_lowres(torch.rand(1, 3, 8, 12), (64, 96)) is None  # 8x: the generic path runs


@pytest.mark.parametrize("bad, needle", [
    ({"scales": [4, 4]}, "scales"), ({"scales": []}, "scales"), ({"channels": 0}, "channels"),
    ({"input_kernel": 2}, "input_kernel"), ({"factor": True}, "factor"),
])
def test_configs_from_files_are_checked(bad, needle):
    data = dict(SRConfig().to_dict(), **bad)
    with pytest.raises(ValueError, match=needle):
        SRConfig.from_dict(data)
