"""Are the style-transfer and adversarial references right? PyTorch and hand-worked cases as oracles."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from solutions import adversarial as adv
from solutions import style_transfer as st


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def tiny_vgg() -> nn.Sequential:
    """conv, relu, conv, in-place relu, pool, conv, relu in float64."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        nn.ReLU(),
    ).double()


def binary_linear_model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).double()


def small_cnn() -> nn.Sequential:
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(4 * 4 * 4, 5),
    ).double()
    model[1].running_mean.uniform_(-0.5, 0.5)
    model[1].running_var.uniform_(0.5, 2.0)
    return model


# --------------------------------------------------------------------------- style transfer


@pytest.mark.parametrize("shape", [(1, 3, 5, 4), (2, 4, 3, 3), (3, 2, 1, 6)])
def test_gram_matrix_is_the_tutorials_normalised_product(shape):
    features = torch.randn(*shape, generator=seeded(), dtype=torch.float64)
    a, b, c, d = shape
    expected = (
        torch.einsum("ichw,jdhw->icjd", features, features).reshape(a * b, a * b) / features.numel()
    )
    torch.testing.assert_close(st.gram_matrix(features), expected)


def test_gram_matrix_of_one_image_is_the_channel_correlation_over_chw():
    features = torch.randn(1, 3, 4, 5, generator=seeded(1), dtype=torch.float64)
    rows = features[0].flatten(1)
    expected = torch.stack([torch.stack([(r * s).sum() for s in rows]) for r in rows]) / (3 * 4 * 5)
    torch.testing.assert_close(st.gram_matrix(features), expected)


def test_content_and_style_losses_are_weighted_mean_squared_errors():
    g = seeded(2)
    generated = [torch.randn(1, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    targets = [torch.randn(3, 3, generator=g, dtype=torch.float64) for _ in range(2)]
    mse = nn.MSELoss()
    torch.testing.assert_close(
        st.content_loss(generated[0], generated[1]), mse(generated[0], generated[1])
    )
    grams = [torch.einsum("nchw,ndhw->cd", f, f) / f.numel() for f in generated]
    expected = 0.25 * mse(grams[0], targets[0]) + 2.0 * mse(grams[1], targets[1])
    torch.testing.assert_close(st.style_loss(generated, targets, [0.25, 2.0]), expected)


def test_total_variation_by_hand_and_by_torch_diff():
    image = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]], dtype=torch.float64)
    # vertical differences 3, 4 -> mean square 12.5; horizontal 1, 2 -> 2.5
    assert float(st.total_variation_loss(image)) == pytest.approx(15.0)
    image = torch.rand(2, 3, 5, 7, generator=seeded(3), dtype=torch.float64)
    expected = torch.diff(image, dim=2).pow(2).mean() + torch.diff(image, dim=3).pow(2).mean()
    torch.testing.assert_close(st.total_variation_loss(image), expected)


def test_extract_features_matches_running_each_prefix_and_survives_in_place_relu():
    model = tiny_vgg()
    x = torch.randn(2, 3, 8, 8, generator=seeded(4), dtype=torch.float64)
    layers = [5, 2, 0, 3]
    got = st.extract_features(model, x, layers)
    for index, features in zip(layers, got):
        torch.testing.assert_close(features, model[: index + 1](x))
    assert (got[1] < 0).any(), "the conv output before the in-place ReLU keeps its negative values"


def test_style_transfer_step_is_one_clamped_sgd_step_on_the_pixels():
    model = tiny_vgg()
    g = seeded(5)
    content = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    style = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    image = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    style_layers = [1, 3, 6]
    kwargs = dict(
        content_target=model[:4](content),
        style_grams=[st.gram_matrix(model[: i + 1](style)) for i in style_layers],
        content_layer=3,
        style_layers=style_layers,
        style_weights=[0.5, 1.0, 2.0],
        content_weight=1.5,
        style_weight=1e3,
        tv_weight=0.1,
    )
    pixels = image.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([pixels], lr=0.05)
    loss = st.style_transfer_loss(model, pixels, **kwargs)
    loss.backward()
    optimizer.step()
    for parameter in model.parameters():
        parameter.grad = None
    stepped = st.style_transfer_step(model, image, 0.05, **kwargs)
    torch.testing.assert_close(stepped, pixels.detach().clamp(0, 1))
    assert not stepped.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert st.style_transfer_loss(model, stepped, **kwargs).item() < loss.item()


# --------------------------------------------------------------------------- adversarial


def test_fgsm_on_a_binary_linear_model_moves_towards_the_other_class():
    model = binary_linear_model()
    x = torch.rand(4, 3, 4, 4, generator=seeded(6), dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    weight = model[1].weight.detach()  # (2, 48)
    direction = (
        (weight[1 - y] - weight[y]).sign().reshape(x.shape)
    )  # d loss / dx up to a positive factor
    torch.testing.assert_close(adv.fgsm_attack(model, x, y, 0.1), (x + 0.1 * direction).clamp(0, 1))


def test_pgd_on_a_binary_linear_model_reaches_the_corner_of_the_ball():
    model = binary_linear_model(1)
    x = torch.rand(3, 3, 4, 4, generator=seeded(7), dtype=torch.float64)
    y = torch.tensor([1, 0, 1])
    weight = model[1].weight.detach()
    corner = (x + 0.05 * (weight[1 - y] - weight[y]).sign().reshape(x.shape)).clamp(0, 1)
    torch.testing.assert_close(adv.pgd_attack(model, x, y, eps=0.05, alpha=0.02, steps=5), corner)


def test_one_pgd_step_of_size_eps_is_fgsm_and_injected_start_at_x_is_no_random_start():
    model = small_cnn()
    x = torch.rand(6, 3, 8, 8, generator=seeded(8), dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=seeded(8))
    torch.testing.assert_close(
        adv.pgd_attack(model, x, y, 0.03, 0.03, 1), adv.fgsm_attack(model, x, y, 0.03)
    )
    torch.testing.assert_close(
        adv.pgd_attack(model, x, y, 0.03, 0.01, 4, init=x.clone()),
        adv.pgd_attack(model, x, y, 0.03, 0.01, 4),
    )


@pytest.mark.parametrize("random_start", [False, True])
def test_pgd_stays_in_the_ball_and_the_image_range_and_leaves_the_model_alone(random_start):
    model = small_cnn().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(6, 3, 8, 8, generator=seeded(9), dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=seeded(9))
    out = adv.pgd_attack(model, x, y, eps=0.05, alpha=0.04, steps=6, random_start=random_start)
    assert (out - x).abs().max() <= 0.05 + 1e-12
    assert out.min() >= 0 and out.max() <= 1
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_adversarial_training_loss_is_train_mode_cross_entropy_on_pgd_examples():
    model = small_cnn().train()
    x = torch.rand(6, 3, 8, 8, generator=seeded(10), dtype=torch.float64)
    y = torch.randint(0, 5, (6,), generator=seeded(10))
    model_eval = small_cnn().eval()
    x_adv = adv.pgd_attack(model_eval, x, y, 0.05, 0.02, 3)
    torch.manual_seed(0)
    loss = adv.adversarial_training_loss(model, x, y, 0.05, 0.02, 3)
    fresh = small_cnn().train()
    torch.manual_seed(0)
    expected = nn.CrossEntropyLoss()(fresh(x_adv), y)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_robust_accuracy_without_attack_is_clean_accuracy_and_batching_does_not_matter():
    model = small_cnn().train()
    x = torch.rand(20, 3, 8, 8, generator=seeded(11), dtype=torch.float64)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    y[:5] = (y[:5] + 1) % 5
    model.train()
    assert adv.robust_accuracy(model, x, y, eps=0.0, alpha=0.01, steps=3) == pytest.approx(0.75)
    attacked = adv.robust_accuracy(model, x, y, eps=0.1, alpha=0.03, steps=5, batch_size=7)
    assert attacked == adv.robust_accuracy(model, x, y, eps=0.1, alpha=0.03, steps=5, batch_size=20)
    assert attacked <= 0.75 and model.training


def test_transfer_rate_counts_only_examples_the_target_got_right():
    target = nn.Sequential(nn.Flatten(), nn.Linear(1, 2)).double()
    with torch.no_grad():
        target[1].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        target[1].bias.zero_()
    # predicts class 1 when the single pixel is positive
    x = torch.tensor([1.0, 1.0, -1.0, 1.0], dtype=torch.float64).reshape(4, 1, 1, 1)
    x_adv = torch.tensor([-1.0, 1.0, 1.0, -1.0], dtype=torch.float64).reshape(4, 1, 1, 1)
    y = torch.tensor([1, 1, 1, 0])
    # clean-correct: 0, 1 (2 is wrong, 3 is wrong); of those, 0 is fooled
    assert adv.transfer_rate(target, x, x_adv, y) == pytest.approx(0.5)
