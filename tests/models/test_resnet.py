"""resnet18 / resnet50: the structure torchvision's checkpoints rely on, and the init options.

Registry-wide tests (shapes, published params/MACs, the torchvision state-dict fixture, ONNX at
two batch sizes, heads and weight loading) cover these models too; this file checks what is
specific to ResNet.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from edgecv.models import create_model
from edgecv.models.resnet import BasicBlock, Bottleneck
from edgecv.models.summary import summarize

LAYOUT = {"resnet18": (BasicBlock, (2, 2, 2, 2), 512), "resnet50": (Bottleneck, (3, 4, 6, 3), 2048)}


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_stages_blocks_and_shortcuts(name):
    block, depths, features = LAYOUT[name]
    with torch.device("meta"):
        model = create_model(name)
    stages = [model.layer1, model.layer2, model.layer3, model.layer4]
    assert [len(stage) for stage in stages] == list(depths)
    assert all(type(b) is block for stage in stages for b in stage)
    # A projection shortcut only where the block changes resolution or width: every stage's first
    # block, except ResNet-18's layer1 (64 -> 64 at stride 1).
    with_projection = [(i, j) for i, stage in enumerate(stages) for j, b in enumerate(stage)
                       if b.downsample is not None]
    first = [(i, 0) for i in range(4)]
    assert with_projection == (first[1:] if block is BasicBlock else first)
    assert model.fc.in_features == features


def test_resnet50_strides_in_the_3x3_conv():
    """torchvision's "v1.5": the stride sits on conv2 (3x3), not conv1 (1x1); MACs depend on it."""
    with torch.device("meta"):
        model = create_model("resnet50")
    for stage in (model.layer2, model.layer3, model.layer4):
        assert stage[0].conv1.stride == (1, 1) and stage[0].conv2.stride == (2, 2)
        assert stage[0].downsample[0].stride == (2, 2)


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_feature_map_sizes_at_64(name):
    model = create_model(name, num_classes=5)
    stats = summarize(model, torch.zeros(1, 3, 64, 64))
    shapes = {layer.name: layer.output_shape for layer in stats.layers}
    expansion = LAYOUT[name][0].expansion
    assert shapes["conv1"] == [1, 64, 32, 32] and shapes["maxpool"] == [1, 64, 16, 16]
    assert shapes["layer4.0.conv2"][2:] == [2, 2]  # 32x downsampling overall
    assert shapes[f"layer4.{LAYOUT[name][1][3] - 1}.bn{3 if expansion == 4 else 2}"] == [1, 512 * expansion, 2, 2]
    assert shapes["fc"] == [1, 5]


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_init_like_torchvision(name):
    torch.manual_seed(0)
    model = create_model(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(m.bias is None for m in convs)  # BatchNorm follows every conv
    conv = model.layer3[0].conv2  # Kaiming-normal, fan-out: std = sqrt(2 / (C_out * k * k))
    expected = (2 / (conv.out_channels * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected, rel=0.05)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any() for m in norms)
    bound = 1 / model.fc.in_features ** 0.5  # fc keeps PyTorch's default uniform init
    assert model.fc.weight.abs().max() <= bound and model.fc.bias.abs().max() <= bound


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_zero_init_residual_makes_identity_blocks(name):
    torch.manual_seed(0)
    plain = create_model(name, num_classes=3)
    zeroed = create_model(name, num_classes=3, zero_init_residual=True).eval()
    assert list(zeroed.state_dict()) == list(plain.state_dict())  # init only, same checkpoint format
    block = zeroed.layer3[1]  # no downsample: out = relu(0 + x) = x for x >= 0
    x = torch.rand(2, block.conv1.in_channels, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x)


def test_in_channels_changes_only_the_stem():
    gray = create_model("resnet18", in_channels=1).state_dict()
    rgb = create_model("resnet18").state_dict()
    differ = [k for k in rgb if rgb[k].shape != gray[k].shape]
    assert differ == ["conv1.weight"] and list(gray["conv1.weight"].shape) == [64, 1, 7, 7]
