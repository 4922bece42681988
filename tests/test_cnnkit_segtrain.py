"""cnnkit.segtrain: the tensor cache, joint augmentation, device batches, pretrained encoders."""

from __future__ import annotations

import os
import urllib.error

import pytest
import torch
import torchvision
from torchvision.models import ResNet18_Weights, ResNet50_Weights

from tests.conftest import load_cnnkit

cnnkit = load_cnnkit()

SIZE = (20, 28)


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    """A tiny fixture in the real layout, found as real data (no fallback message)."""
    root = tmp_path_factory.mktemp("voc")
    cnnkit.write_voc_fixture(root, train_size=6, val_size=2, seed=3)
    return root


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CNNKIT_DOWNLOAD", raising=False)
    assert torch.hub.get_dir() == str(tmp_path / "torch" / "hub")
    return tmp_path / "torch" / "hub" / "checkpoints"


# --------------------------------------------------------------------------- the tensor cache


def test_cache_round_trip_matches_the_loader_and_is_read_back(voc_root, capsys):
    dataset = cnnkit.load_voc_segmentation("train", size=SIZE, root=voc_root)
    chosen = cnnkit.subset(dataset, 4, seed=1)
    pairs = cnnkit.cache_voc_tensors(chosen)
    first = capsys.readouterr().out
    assert "decoded 4 images at 20x28 once" in first and "saved to" in first
    assert pairs.images.dtype == torch.uint8 and pairs.images.shape == (4, 3, *SIZE)
    assert pairs.masks.dtype == torch.uint8 and pairs.masks.shape == (4, *SIZE)
    assert pairs.indices == chosen.indices and pairs.source is dataset
    for position, index in enumerate(chosen.indices):
        image, mask = dataset[index]
        cached_image, cached_mask = pairs[position]
        assert torch.equal(cached_image, image), "uint8 storage is exact for to_tensor's images"
        assert torch.equal(cached_mask, mask) and cached_mask.dtype == torch.int64
    assert 255 in pairs.masks.unique().tolist(), "void kept"
    files = list((voc_root / "cache").glob("voc2012-train-20x28-4-*.pt"))
    assert len(files) == 1

    again = cnnkit.cache_voc_tensors(chosen)
    second = capsys.readouterr().out
    assert "from" in second and "decoded" not in second, "the second call only loads the file"
    assert torch.equal(again.images, pairs.images) and torch.equal(again.masks, pairs.masks)
    assert again.indices == pairs.indices


def test_cache_is_rebuilt_when_a_file_changes(voc_root, capsys):
    dataset = cnnkit.load_voc_segmentation("val", size=SIZE, root=voc_root)
    cnnkit.cache_voc_tensors(dataset)
    mask_file = dataset.targets[0]
    stat = os.stat(mask_file)
    os.utime(mask_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    capsys.readouterr()
    cnnkit.cache_voc_tensors(dataset)
    assert "decoded 2 images" in capsys.readouterr().out
    assert len(list((voc_root / "cache").glob("voc2012-val-20x28-2-*.pt"))) == 2


def test_cache_stays_in_memory_when_the_folder_cannot_be_written(voc_root, tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    dataset = cnnkit.load_voc_segmentation("val", size=SIZE, root=voc_root)
    pairs = cnnkit.cache_voc_tensors(dataset, cache_dir=blocker / "cache")
    assert len(pairs) == 2 and "kept in memory only" in capsys.readouterr().out


def test_cache_needs_one_size(voc_root):
    with pytest.raises(ValueError, match="size"):
        cnnkit.cache_voc_tensors(cnnkit.load_voc_segmentation("val", root=voc_root))


def test_tensor_pairs_work_with_a_plain_data_loader():
    images = torch.randint(0, 256, (5, 3, 4, 6), dtype=torch.uint8)
    masks = torch.randint(0, 3, (5, 4, 6), dtype=torch.uint8)
    batch_images, batch_masks = next(
        iter(torch.utils.data.DataLoader(cnnkit.TensorPairs(images, masks), batch_size=5))
    )
    assert torch.equal(batch_images, images.float() / 255)
    assert torch.equal(batch_masks, masks.long())
    with pytest.raises(TypeError):
        cnnkit.TensorPairs(images.float(), masks)


# --------------------------------------------------------------------------- augmentation


def _coded_pairs(count=6, height=24, width=30, seed=0):
    """Masks with classes 0-4 and void 255; every image channel is its mask / 255."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.randint(0, 5, (count, height, width), generator=generator)
    masks[:, 3, :] = 255
    masks[:, :, 7] = 255
    images = (masks.float() / 255)[:, None].repeat(1, 3, 1, 1)
    return images, masks


def test_augmentation_keeps_image_and_mask_aligned_and_void_intact():
    images, masks = _coded_pairs()
    generator = torch.Generator().manual_seed(0)
    out_images, out_masks = cnnkit.augment_pairs(
        images, masks, scale=(0.5, 2.0), generator=generator, image_mode="nearest"
    )
    assert out_images.shape == images.shape and out_masks.shape == masks.shape
    assert out_masks.dtype == torch.int64
    assert set(out_masks.unique().tolist()) <= {0, 1, 2, 3, 4, 255}, "labels never blended"
    padded = (out_images == 0).all(dim=1) & (out_masks == 255)
    labelled = ~padded
    decoded = (out_images[:, 0] * 255).round().long()
    assert torch.equal(decoded[labelled], out_masks[labelled]), "same geometry for both"
    assert (out_masks == 255).any() and (out_masks < 255).any()
    assert not torch.equal(out_masks, masks), "something was transformed"


def test_augmentation_with_bilinear_images_agrees_inside_regions():
    masks = torch.zeros(4, 32, 40, dtype=torch.int64)
    masks[:, 4:20, 5:22], masks[:, 14:30, 24:38] = 1, 2
    images = torch.stack([masks.float() / 2] * 3, dim=1)
    out_images, out_masks = cnnkit.augment_pairs(
        images, masks, generator=torch.Generator().manual_seed(1)
    )
    labelled = out_masks != 255
    agree = (out_images[:, 0] * 2).round().long()[labelled] == out_masks[labelled]
    assert agree.float().mean() > 0.95, "only boundary pixels may blend"


def test_no_zoom_and_no_flip_is_the_identity_and_flip_mirrors():
    images, masks = _coded_pairs(count=3)
    images = images + torch.rand_like(images) * 0.01
    same_images, same_masks = cnnkit.augment_pairs(images, masks, flip=0.0, scale=(1.0, 1.0))
    assert torch.allclose(same_images, images, atol=1e-5) and torch.equal(same_masks, masks)
    mirrored_images, mirrored_masks = cnnkit.augment_pairs(
        images, masks, flip=1.0, scale=(1.0, 1.0)
    )
    assert torch.allclose(mirrored_images, images.flip(-1), atol=1e-5)
    assert torch.equal(mirrored_masks, masks.flip(-1))


def test_zooming_out_pads_with_void_and_other_ignore_indices_work():
    images, masks = _coded_pairs(count=2)
    masks[masks == 255] = 0
    out_images, out_masks = cnnkit.augment_pairs(
        images, masks, flip=0.0, scale=(0.5, 0.5), ignore_index=-1, image_mode="nearest"
    )
    padded = out_masks == -1
    assert padded.float().mean() > 0.5, "a half-size image leaves three quarters padded"
    assert (out_images.permute(1, 0, 2, 3)[:, padded] == 0).all()


def test_augmentation_is_reproducible_with_a_generator():
    images, masks = _coded_pairs()
    first = cnnkit.augment_pairs(images, masks, generator=torch.Generator().manual_seed(5))
    second = cnnkit.augment_pairs(images, masks, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


# --------------------------------------------------------------------------- batches on the device


def test_device_loader_batches_shuffles_and_augments():
    images = torch.arange(10, dtype=torch.uint8)[:, None, None, None].expand(10, 3, 2, 2)
    masks = torch.arange(10, dtype=torch.uint8)[:, None, None].expand(10, 2, 2)
    pairs = cnnkit.TensorPairs(images.contiguous(), masks.contiguous())
    loader = cnnkit.DeviceLoader(pairs, batch_size=4, device="cpu", shuffle=True, drop_last=True)
    assert len(loader) == 2
    epochs = [[batch for batch in loader] for _ in range(2)]
    orders = []
    for epoch in epochs:
        seen = torch.cat([m[:, 0, 0] for _, m in epoch])
        assert len(seen) == 8 and len(set(seen.tolist())) == 8
        orders.append(seen.tolist())
        for batch_images, batch_masks in epoch:
            assert batch_images.dtype == torch.float32 and batch_masks.dtype == torch.int64
            decoded = (batch_images[:, 0, 0, 0] * 255).round().long()
            assert torch.equal(decoded, batch_masks[:, 0, 0]), "images and masks stay paired"
    assert orders[0] != orders[1], "a new order every epoch"
    assert len(cnnkit.DeviceLoader(pairs, batch_size=4, device="cpu")) == 3
    calls = []

    def augment(batch_images, batch_masks):
        calls.append(len(batch_images))
        return batch_images, batch_masks

    all_batches = list(cnnkit.DeviceLoader(pairs, batch_size=4, device="cpu", augment=augment))
    assert calls == [4, 4, 2] and torch.equal(all_batches[0][1][:, 0, 0], torch.arange(4))


# --------------------------------------------------------------------------- pretrained encoders


def test_imagenet_resnet_falls_back_without_weights_or_network(empty_torch_home, capsys):
    assert cnnkit.imagenet_resnet("resnet18") is None
    message = capsys.readouterr().out
    assert "resnet18-f37072fd.pth" in message and "CNNKIT_DOWNLOAD=1" in message
    assert str(empty_torch_home) in message


def test_imagenet_resnet_download_failure_falls_back(empty_torch_home, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("CNNKIT_DOWNLOAD", "1")
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    assert cnnkit.imagenet_resnet("resnet18") is None
    assert "could not be loaded (URLError" in capsys.readouterr().out


def test_imagenet_resnet_uses_a_cached_weights_file(empty_torch_home, capsys):
    torch.manual_seed(7)
    fake = torchvision.models.resnet18(weights=None).state_dict()
    path = cnnkit.weights_cache_path(ResNet18_Weights.IMAGENET1K_V1)
    assert path.parent == empty_torch_home
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    network = cnnkit.imagenet_resnet("resnet18")
    assert "from the torch hub cache" in capsys.readouterr().out
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, fake[name]), name


def test_imagenet_resnet_takes_any_cached_entry_and_dilates(empty_torch_home, capsys):
    torch.manual_seed(0)
    fake = torchvision.models.resnet50(weights=None).state_dict()
    path = cnnkit.weights_cache_path(ResNet50_Weights.IMAGENET1K_V1)  # not the default (V2)
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    network = cnnkit.imagenet_resnet("resnet50", replace_stride_with_dilation=(False, False, True))
    assert "IMAGENET1K_V1" in capsys.readouterr().out
    assert torch.equal(network.conv1.weight, fake["conv1.weight"])
    encoder = cnnkit.ResNetFeatures(network, return_all=False).eval()
    with torch.no_grad():
        assert encoder(torch.rand(1, 3, 64, 96)).shape == (1, 2048, 4, 6), "output stride 16"


def test_resnet_features_levels_channels_and_normalisation():
    torch.manual_seed(0)
    network = torchvision.models.resnet18(weights=None).eval()
    encoder = cnnkit.ResNetFeatures(network).eval()
    assert encoder.channels == [64, 64, 128, 256, 512]
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        features = encoder(x)
        assert [tuple(f.shape[1:]) for f in features] == [
            (64, 32, 48), (64, 16, 24), (128, 8, 12), (256, 4, 6), (512, 2, 3)
        ]  # fmt: skip
        mean = torch.tensor(cnnkit.IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(cnnkit.IMAGENET_STD).view(1, 3, 1, 1)
        body = torch.nn.Sequential(*list(network.children())[:-2])
        assert torch.allclose(features[-1], body((x - mean) / std), atol=1e-5)
    parameters = {id(p) for p in encoder.parameters()}
    assert all(id(p) in parameters for n, p in network.named_parameters() if not n.startswith("fc"))


# --------------------------------------------------------------------------- mixed precision


def test_train_epoch_amp_on_the_cpu_is_train_epoch():
    def run(step):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        data = [(torch.rand(2, 3, 5, 6), torch.randint(0, 4, (2, 5, 6))) for _ in range(3)]
        loss = step(model, data, torch.nn.functional.cross_entropy, optimizer, "cpu")
        return loss, model.state_dict()

    loss, state = run(cnnkit.train_epoch_amp)
    expected_loss, expected_state = run(cnnkit.train_epoch)
    assert loss == pytest.approx(expected_loss, rel=1e-6)
    for name in state:
        assert torch.allclose(state[name].float(), expected_state[name].float()), name


def test_mixed_precision_is_off_on_the_cpu():
    with cnnkit.mixed_precision("cpu"):
        assert not torch.is_autocast_enabled("cuda")
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
