"""Do the transfer-learning references agree with torchvision's model structure and weights API?"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models

from solutions import transfer as ref

ARCHS = ["resnet18", "mobilenet_v3_small", "mobilenet_v2", "efficientnet_b0"]


def build(arch: str, **options) -> nn.Module:
    return models.get_model(arch, weights=None, **options)


@pytest.mark.parametrize("arch", ARCHS)
def test_replace_head_gives_torchvisions_model_for_k_classes(arch):
    model = build(arch)
    in_features = ref.replace_head(model, 7)
    target = build(arch, num_classes=7)
    assert [(n, p.shape) for n, p in model.named_parameters()] == [
        (n, p.shape) for n, p in target.named_parameters()
    ]
    assert in_features == ref.head(target).in_features
    assert type(ref.head(model)) is nn.Linear and ref.head(model).bias is not None


def test_the_head_is_the_last_linear_layer_of_each_family():
    assert ref.head_name(build("resnet18")) == "fc"
    assert ref.head_name(build("mobilenet_v3_small")) == "classifier.3"
    assert ref.head_name(build("efficientnet_b0")) == "classifier.1"
    for arch in ARCHS:
        linears = [n for n, m in build(arch).named_modules() if isinstance(m, nn.Linear)]
        assert linears[-1] == ref.head_name(build(arch))


def test_replace_head_keeps_dtype_device_and_every_other_parameter():
    model = build("resnet18").double()
    before = {n: p for n, p in model.named_parameters() if not n.startswith("fc.")}
    ref.replace_head(model, 3)
    assert model.fc.weight.dtype == torch.float64
    assert all(p is before[n] for n, p in model.named_parameters() if n in before)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_freeze_leaves_only_the_head_trainable_and_batchnorm_statistics_still(arch):
    model = build(arch, num_classes=10).train()
    count = ref.freeze_backbone(model)
    head = ref.head(model)
    assert count == sum(p.numel() for p in head.parameters())
    assert {id(p) for p in model.parameters() if p.requires_grad} == {
        id(p) for p in head.parameters()
    }
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and not any(m.training for m in norms)
    others = [m for m in model.modules() if not isinstance(m, nn.BatchNorm2d)]
    assert all(m.training for m in others)
    ref.train_mode(model)
    assert not any(m.training for m in norms) and all(m.training for m in others)
    stats = [m.running_mean.clone() for m in norms]
    model(torch.rand(2, 3, 32, 32))  # a training-mode forward pass
    assert all(torch.equal(s, m.running_mean) for s, m in zip(stats, norms))


def test_train_mode_trains_batchnorm_layers_with_trainable_parameters():
    model = ref.train_mode(build("resnet18").eval())
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "efficientnet_b0"])
def test_blocks_partition_the_parameters_in_forward_order(arch):
    model = build(arch, num_classes=10)
    blocks = ref.parameter_blocks(model)
    flat = [name for block in blocks for name in block]
    assert flat == [name for name, _ in model.named_parameters()]  # each once, in order
    expected = 6 if arch == "resnet18" else len(model.features) + 1
    assert len(blocks) == expected
    assert blocks[-1][-1].startswith(ref.head_name(model))


def test_resnet_blocks_are_stem_stages_and_head():
    blocks = ref.parameter_blocks(build("resnet18"))
    assert blocks[0] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert [b[0].split(".")[0] for b in blocks[1:]] == [
        "layer1",
        "layer2",
        "layer3",
        "layer4",
        "fc",
    ]


def test_param_groups_build_an_optimizer_with_the_stated_learning_rates():
    model = build("resnet18", num_classes=10)
    groups = ref.discriminative_param_groups(model, 1e-3, 0.5)
    optimizer = torch.optim.AdamW(groups)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx(
        [1e-3 * 0.5**k for k in (5, 4, 3, 2, 1, 0)], rel=1e-12
    )
    assert optimizer.param_groups[-1]["param_names"] == ["fc.weight", "fc.bias"]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


def test_progressive_size_follows_the_stated_rule():
    assert [ref.progressive_size(e, 8, 32, 64) for e in range(8)] == [
        32,
        32,
        40,
        40,
        48,
        48,
        64,
        64,
    ]
    assert [ref.progressive_size(e, 4, 32, 64, stages=1) for e in range(4)] == [64] * 4
    for epochs, stages in [(5, 5), (7, 3), (12, 4)]:
        sizes = [ref.progressive_size(e, epochs, 64, 224, stages, 32) for e in range(epochs)]
        assert sizes[0] == 64 and sizes[-1] == 224  # the last epoch runs at full size
        assert sizes == sorted(sizes) and all(s % 32 == 0 for s in sizes)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v2", "efficientnet_b0", "efficientnet_b1"])
def test_normalisation_constants_are_the_weights_own(arch):
    transforms = models.get_model_weights(arch).DEFAULT.transforms()
    assert tuple(transforms.mean) == ref.IMAGENET_MEAN
    assert tuple(transforms.std) == ref.IMAGENET_STD


def test_normalize_matches_torchvisions_transform():
    from torchvision.transforms.functional import normalize

    x = torch.rand(2, 3, 5, 4, dtype=torch.float64)
    expected = normalize(x, list(ref.IMAGENET_MEAN), list(ref.IMAGENET_STD))
    torch.testing.assert_close(ref.imagenet_normalize(x), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ref.imagenet_normalize(x[0]), expected[0], rtol=1e-12, atol=1e-12)
    assert ref.imagenet_normalize(x.float()).dtype == torch.float32


def test_crop_sizes_come_from_the_default_weights():
    assert ref.crop_size_of("resnet18") == 224
    assert ref.crop_size_of("efficientnet_b1") == 240


def test_loader_uses_a_cached_default_file_and_falls_back_without_one(tmp_path, monkeypatch):
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    try:
        model, crop = ref.load_pretrained("mobilenet_v3_small")  # nothing cached: random init
        assert crop == 224 and isinstance(model, models.MobileNetV3)
        weights = models.MobileNet_V3_Small_Weights.DEFAULT
        seeded = build("mobilenet_v3_small")
        with torch.no_grad():
            for p in seeded.parameters():
                p.normal_()
        path = ref.cache_path(weights)
        path.parent.mkdir(parents=True)
        torch.save(seeded.state_dict(), path)
        loaded, _ = ref.load_pretrained("mobilenet_v3_small")
        assert all(
            torch.equal(a, b)
            for a, b in zip(loaded.state_dict().values(), seeded.state_dict().values())
        )
    finally:
        torch.hub.set_dir(previous)
