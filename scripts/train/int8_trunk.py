"""The int8 trunk of listing-v1-int8: the frozen ImageNet stages quantised first, the top trained on
what they give.

Static quantisation after training (quantize.py) cost listing-v1 about 2 points of validation
ivory AP in every variant tried, and leaving the trained top in float did not help: the loss is in
the quantised trunk, whose outputs the float-trained top never saw. The trunk is frozen, so its
quantised form can be fixed before training: the whole network is exported, its trunk nodes (stem
and stages 0-4) quantised with ONNX Runtime (QDQ, per-channel int8 weights in 7 bits, uint8
activations, percentile calibration on 256 training images), and the cached features the top trains on are that
quantised trunk's outputs as ONNX Runtime computes them. After training the network is exported
again and quantised the same way; the trunk's quantisation depends only on its weights and the
calibration images, so the shipped model's trunk gives exactly the features the top trained on
(`same_trunk` checks it). The top stays in float.

Weights use 7 of their 8 bits (`reduce_range`): on x86 CPUs without AVX-512 VNNI, ONNX Runtime's
uint8 x int8 kernels add pairs of products in 16 bits, which saturates with full-range weights, so
the same model would score differently there than on a VNNI machine (the ImageNet model's recall
differed by 6 points). With 7-bit weights no pair can overflow, every integer sum is exact, and
the scores are the same on both.
"""

import random
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization.shape_inference import quant_pre_process

CALIBRATION = 256
SEED = 1130


def first_top_node(frozen: int) -> str:
    """The node the trained top starts with (torch.onnx's name for stage `frozen`'s first conv)."""
    return f"/blocks/blocks.{frozen}/blocks.{frozen}.0/conv_pw/Conv"


def quantise(float_path: Path, out_path: Path, train_items, size: int, frozen: int, work: Path) -> str:
    """Writes `float_path` with its trunk quantised to `out_path`; returns the name of the tensor
    the top reads (the trunk's output, dequantised)."""
    from quantize import static_qdq  # quantize imports train, which imports this module lazily

    work.mkdir(parents=True, exist_ok=True)
    pre = work / f"{out_path.stem}-pre.onnx"
    quant_pre_process(str(float_path), str(pre), skip_symbolic_shape=True)
    prefixes = ("/conv_stem/", *(f"/blocks/blocks.{s}/" for s in range(frozen)))
    nodes = [n.name for n in onnx.load(str(pre)).graph.node if n.name.startswith(prefixes)]
    calib = random.Random(SEED).sample(train_items, min(CALIBRATION, len(train_items)))
    static_qdq(pre, out_path, calib, size, "percentile", nodes_to_quantize=nodes, reduce_range=True)
    top = first_top_node(frozen)
    return next(n.input[0] for n in onnx.load(str(out_path)).graph.node if n.name == top)


class Trunk:
    """The quantised model cut at the top's input, run by ONNX Runtime: a drop-in for
    train.Trunk when caching features (torch tensors in, torch tensors out)."""

    def __init__(self, model_path: Path, boundary: str, threads: int, work: Path):
        cut = work / f"{model_path.stem}-trunk.onnx"
        onnx.utils.extract_model(str(model_path), str(cut), ["image"], [boundary])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        self.sess = ort.InferenceSession(str(cut), opts, providers=["CPUExecutionProvider"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.sess.run(None, {"image": x.numpy()})[0])


def same_trunk(a: Trunk, b: Trunk, x: np.ndarray) -> float:
    """Largest difference between two quantised trunks' outputs on `x` (0 when the shipped
    model's trunk is the one the top trained on)."""
    t = torch.from_numpy(x)
    return float((a(t) - b(t)).abs().max())
