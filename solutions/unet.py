"""References for m06_05_unet: U-Net blocks and the masked cross-entropy (float64-safe).

The conventions are the ones the notebook states and the hidden suite grades:

- ``DoubleConv``: (3x3 conv, padding 1, no bias -> BatchNorm -> ReLU) twice.
  Registration order: conv1, bn1, conv2, bn2.
- ``EncoderBlock``: a ``DoubleConv``, then 2x2 max pooling (odd sizes round down);
  ``forward`` returns ``(skip, pooled)``.
- ``DecoderBlock``: 2x2 transposed conv with stride 2 (with bias), zero-pad the
  upsampled map to the skip's size (``diff // 2`` before, the rest after), then
  ``torch.cat([upsampled, skip], dim=1)`` and a ``DoubleConv``.
  Registration order: up, conv.
- ``UNet``: encoders, bottleneck, decoders (deepest first), 1x1 head with bias.
- ``masked_cross_entropy``: mean over pixels whose target is not ``ignore_index``;
  0 when every pixel is ignored.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DoubleConv(nn.Module):
    """(conv3x3 -> BN -> ReLU) x 2. ``x: (N, C_in, H, W) -> (N, C_out, H, W)``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class EncoderBlock(nn.Module):
    """``x: (N, C_in, H, W) -> (skip (N, C_out, H, W), pooled (N, C_out, H // 2, W // 2))``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = DoubleConv(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skip = self.conv(x)
        return skip, F.max_pool2d(skip, kernel_size=2)


def pad_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad ``x: (N, C, h, w)`` to ``(N, C, H, W)``: ``diff // 2`` before, the rest after."""
    dy, dx = size[0] - x.shape[-2], size[1] - x.shape[-1]
    return F.pad(x, [dx // 2, dx - dx // 2, dy // 2, dy - dy // 2])


class DecoderBlock(nn.Module):
    """``x: (N, C_in, h, w), skip: (N, C_out, H, W) -> (N, C_out, H, W)`` with ``H in {2h, 2h+1}``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = pad_to(self.up(x), (skip.shape[-2], skip.shape[-1]))  # (N, C_out, H, W)
        return self.conv(torch.cat([x, skip], dim=1))  # cat: (N, 2 C_out, H, W)


class UNet(nn.Module):
    """``x: (N, C_in, H, W) -> logits (N, num_classes, H, W)`` for any ``H, W >= 2**depth``."""

    def __init__(
        self, in_channels: int = 3, num_classes: int = 21, base_channels: int = 64, depth: int = 4
    ) -> None:
        super().__init__()
        widths = [base_channels * 2**level for level in range(depth)]
        self.encoders = nn.ModuleList(
            EncoderBlock(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
        )
        self.bottleneck = DoubleConv(widths[-1], 2 * widths[-1])
        self.decoders = nn.ModuleList(DecoderBlock(2 * width, width) for width in reversed(widths))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for encoder in self.encoders:
            skip, x = encoder(x)
            skips.append(skip)
        x = self.bottleneck(x)
        for decoder, skip in zip(self.decoders, reversed(skips)):
            x = decoder(x, skip)
        return self.head(x)


def masked_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = 255
) -> torch.Tensor:
    """Mean cross-entropy over the pixels whose target is not ``ignore_index``.

    ``logits: (N, C, H, W)``, ``target: (N, H, W)`` int64 -> scalar; 0 when no pixel counts.
    """
    valid = target != ignore_index  # (N, H, W)
    safe_target = torch.where(valid, target, torch.zeros_like(target))
    log_probs = torch.log_softmax(logits, dim=1)  # (N, C, H, W)
    picked = log_probs.gather(1, safe_target.unsqueeze(1)).squeeze(1)  # (N, H, W)
    return -(picked * valid).sum() / valid.sum().clamp(min=1)


def unet_parameter_count(in_channels: int, num_classes: int, base_channels: int, depth: int) -> int:
    """The parameter count of ``UNet(...)`` by formula (an independent check of the module)."""

    def double_conv(c_in: int, c_out: int) -> int:
        return 9 * c_in * c_out + 9 * c_out * c_out + 4 * c_out

    widths = [base_channels * 2**level for level in range(depth)]
    total = sum(
        double_conv(c_in, c_out) for c_in, c_out in zip([in_channels, *widths[:-1]], widths)
    )
    total += double_conv(widths[-1], 2 * widths[-1])
    total += sum(4 * 2 * w * w + w + double_conv(2 * w, w) for w in widths)
    return total + widths[0] * num_classes + num_classes
