"""A web page for the visual inspection system of c12_capstone_anomaly: upload a photo of a
part, get back the anomaly heatmap and the defect probability.

``build_scorer(normal_images)`` builds PatchCore-lite from good images with the reference
functions of ``solutions/anomaly.py`` (a seeded ResNet-18 to ``layer3``: ImageNet weights
are not available offline, and random convolutional features still separate the
fixture's defects); ``create_app(scorer)`` serves it with Flask::

    GET  /        the page: a file input, a button, the heatmap and the probability
    POST /score   multipart field "image" -> JSON {"probability", "verdict", "score",
                  "heatmap": "data:image/png;base64,..."}

The probability is ``sigmoid((score - t) / s)``: 0.5 at ``t``, the highest score of good
images held out from the bank, rising over ``s``, the spread of those scores.
tests/test_anomaly_app.py serves it on 127.0.0.1 and drives it in headless Chromium.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from solutions import anomaly as ref

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class _Backbone(torch.nn.Module):
    """ResNet-18 to layer3 (seeded random weights); returns the layer2 and layer3 maps."""

    def __init__(self, seed: int = 0) -> None:
        import torchvision

        super().__init__()
        torch.manual_seed(seed)
        net = torchvision.models.resnet18()
        self.stem = torch.nn.Sequential(
            net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2
        )
        self.layer3 = net.layer3
        self.register_buffer("mean", torch.tensor(MEAN).reshape(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).reshape(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        l2 = self.stem((x - self.mean) / self.std)
        return [l2, self.layer3(l2)]


@dataclass
class Scorer:
    """Images (N, 3, S, S) in [0, 1] -> anomaly maps (N, S, S), scores and probabilities."""

    backbone: torch.nn.Module
    bank: torch.Tensor
    threshold: float
    spread: float
    size: int

    @torch.no_grad()
    def maps(self, images: torch.Tensor) -> torch.Tensor:
        features = ref.patch_features(self.backbone(images.float()))
        return ref.anomaly_map(features, self.bank)

    def probability(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((scores - self.threshold) / self.spread)

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        """One image (3, S, S) -> (heatmap (S, S) resized to the image, score, probability)."""
        patch_map = self.maps(image[None])
        score = ref.image_scores(patch_map)
        heatmap = F.interpolate(
            patch_map[:, None], size=image.shape[-2:], mode="bilinear", align_corners=False
        )[0, 0]
        return heatmap, float(score[0]), float(self.probability(score)[0])


def build_scorer(normal_images: torch.Tensor, seed: int = 0) -> Scorer:
    """PatchCore-lite from good images (N, 3, S, S): every patch of the first three quarters
    in the bank; the last quarter, scored against it, calibrates the probability."""
    if len(normal_images) < 4:
        raise ValueError("build_scorer needs at least 4 good images")
    backbone = _Backbone(seed).eval()
    split = len(normal_images) - max(2, len(normal_images) // 4)
    with torch.no_grad():
        bank = ref.memory_bank(ref.patch_features(backbone(normal_images[:split].float())))
    scorer = Scorer(backbone, bank, 0.0, 1.0, normal_images.shape[-1])
    held_out = ref.image_scores(scorer.maps(normal_images[split:]))
    scorer.threshold = float(held_out.max())
    scorer.spread = float(held_out.std()) + 1e-6
    return scorer


def verdict(probability: float) -> str:
    if probability >= 0.5:
        return f"DEFECT - remove the part ({probability:.0%} sure)"
    return f"OK - part passes ({1 - probability:.0%} sure)"


def read_image(data: bytes, size: int) -> torch.Tensor:
    """Uploaded bytes (PNG, JPEG, ...) -> (3, size, size) float in [0, 1]."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.BILINEAR)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255).permute(2, 0, 1)


def overlay_png(
    image: torch.Tensor, heatmap: torch.Tensor, probability: float, level: float, vmax: float
) -> bytes:
    """The photo as it is, with only the areas that look unlike any good part marked:
    coloured from yellow (just above ``level``, the highest value seen on good parts held
    out from the bank) to red (``vmax``) and outlined, and the verdict as the title."""
    from matplotlib.figure import Figure

    values = heatmap.numpy()
    unusual = values >= level
    figure = Figure(figsize=(4.2, 3.8), dpi=100)
    ax = figure.add_subplot()
    ax.imshow(image.permute(1, 2, 0).numpy())
    shown = ax.imshow(
        np.ma.masked_where(~unusual, values), cmap="YlOrRd", alpha=0.6, vmin=level, vmax=vmax
    )
    if unusual.any():
        ax.contour(unusual.astype(float), levels=[0.5], colors="red", linewidths=1.5)
        note = "marked: areas unlike any good part"
    else:
        note = "nothing unusual found"
    colour = "red" if probability >= 0.5 else "green"
    ax.set_title(verdict(probability), fontsize=9, color=colour)
    ax.set_xlabel(note, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    bar = figure.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
    bar.set_ticks([level, vmax])
    bar.set_ticklabels(["unusual", "very\nunusual"])
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Visual inspection</title>
<style>
 body { font-family: sans-serif; margin: 2em; max-width: 40em; }
 #result { margin-top: 1.5em; }
 #verdict { font-size: 1.3em; font-weight: bold; }
 .defect { color: #c00; } .ok { color: #080; }
</style></head>
<body>
<h1>Visual inspection</h1>
<p>Upload a photo of a part. The picture comes back with the areas that look unlike any
good part marked in yellow to red and outlined; a good part comes back unmarked. The
probability says how sure the system is that the part is defective.</p>
<form id="form">
 <input type="file" id="file" name="image" accept="image/*">
 <button type="submit" id="submit">Inspect</button>
</form>
<div id="result" hidden>
 <p id="verdict"></p>
 <p>Defect probability: <span id="probability"></span></p>
 <img id="heatmap" alt="anomaly heatmap">
</div>
<p id="error" class="defect"></p>
<script>
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = document.getElementById("file").files[0];
  if (!file) { document.getElementById("error").textContent = "Choose an image first."; return; }
  const body = new FormData();
  body.append("image", file);
  const response = await fetch("score", { method: "POST", body });
  const answer = await response.json();
  if (!response.ok) { document.getElementById("error").textContent = answer.error; return; }
  const verdict = document.getElementById("verdict");
  verdict.textContent = answer.verdict;
  verdict.className = answer.probability >= 0.5 ? "defect" : "ok";
  const probability = document.getElementById("probability");
  probability.textContent = answer.probability.toFixed(3);
  probability.dataset.value = answer.probability;
  document.getElementById("heatmap").src = answer.heatmap;
  document.getElementById("result").hidden = false;
});
</script>
</body>
</html>
"""


def create_app(scorer: Scorer):
    """The Flask app: the page at ``/`` and the scoring endpoint at ``/score``."""
    from flask import Flask, jsonify, request

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 16 * 1024 * 1024
    level = scorer.threshold  # the highest value of any held-out good part
    vmax = max(2 * level, level + 1e-6)  # the colour bar's red end

    @app.get("/")
    def page():
        return PAGE

    @app.post("/score")
    def score():
        upload = request.files.get("image")
        if upload is None:
            return jsonify(error="no file in the field 'image'"), 400
        try:
            image = read_image(upload.read(), scorer.size)
        except Exception:  # not an image PIL can read
            return jsonify(error="the file is not an image"), 400
        heatmap, value, probability = scorer(image)
        png = overlay_png(image, heatmap, probability, level, vmax)
        return jsonify(
            probability=probability,
            score=value,
            verdict=verdict(probability),
            heatmap="data:image/png;base64," + base64.b64encode(png).decode(),
        )

    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m solutions.anomaly_app [--category carpet] [--port 5000]``: build the scorer
    from a category's good training images (the real MVTec AD one under
    ``CNNKIT_DATA/mvtec_ad/<category>`` when present, else the synthetic fixture) and serve
    the page on 127.0.0.1."""
    import argparse
    import importlib

    from autograder.course import load_helper

    parser = argparse.ArgumentParser(
        prog="python -m solutions.anomaly_app",
        description="Serve the capstone's inspection page: upload a part, get its heatmap.",
        epilog="example: CNNKIT_DATA=data python -m solutions.anomaly_app --category carpet",
    )
    parser.add_argument(
        "--category", default=None, help="MVTec AD category under CNNKIT_DATA/mvtec_ad"
    )
    parser.add_argument("--images", type=int, default=64, help="good images in the bank (>= 4)")
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    if args.images < 4:
        parser.error("--images must be at least 4")
    mvtec = importlib.import_module(f"{load_helper().__name__}.mvtec")
    root = mvtec.category_dir(args.category)
    images, _, _, _ = mvtec.as_tensors(mvtec.MVTecAD(root, "train", 128), args.images)
    scorer = build_scorer(images)
    print(f"bank {tuple(scorer.bank.shape)} from {len(images)} good images of {root}")
    create_app(scorer).run(host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
