import pytest
import torch

from vsa.common.model import PRESETS, AEConfig, Autoencoder, parameter_count, preset


@pytest.mark.parametrize("size", [(64, 64), (128, 192), (256, 448)])
def test_fully_convolutional_shapes(size):
    model = Autoencoder(AEConfig(k=4)).eval()
    x = torch.rand(2, 3, *size)
    z = model.encode(x)
    assert z.shape == (2, 48, size[0] // 64, size[1] // 64)
    assert model.decode(z).shape == x.shape


def test_architecture_follows_the_paper():
    model = Autoencoder(AEConfig(k=8))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    deconvs = [m for m in model.decoder if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.kernel_size for c in convs] == [(5, 5)] * 6 and all(c.stride == (2, 2) for c in convs)
    assert [d.kernel_size for d in deconvs] == [(4, 4)] * 6 and all(d.stride == (2, 2) for d in deconvs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder) == 6


def test_paper_preset_size():
    config = preset("paper")
    assert config.latent_channels == 768
    assert 28e6 < parameter_count(Autoencoder(config)) < 36e6


def test_presets_and_errors():
    assert set(PRESETS) >= {"paper", "fast"}
    with pytest.raises(ValueError, match="unknown preset"):
        preset("huge")
    with pytest.raises(ValueError, match="multiple of 64"):
        Autoencoder(AEConfig(k=4)).encode(torch.rand(1, 3, 100, 64))
