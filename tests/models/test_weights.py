"""load_weights / replace_head / head helpers over every registered architecture."""
from __future__ import annotations

import pytest
import torch

from edgecv.errors import CheckpointError, ModelError
from edgecv.models import (
    create_model,
    freeze_backbone,
    get_classifier,
    get_model_spec,
    head_name,
    head_parameter_names,
    list_models,
    load_weights,
    replace_head,
)
from edgecv.models.checkpoint import save_checkpoint

VOCAB = 40
EXPECTED_HEADS = {
    "mobilenet_v2": "classifier.1",
    "mobilenet_v3_large": "classifier.3",
    "mobilenet_v3_small": "classifier.3",
    "squeezenet1_0": "classifier.1",
    "squeezenet1_1": "classifier.1",
    "resnet18": "fc",
    "resnet50": "fc",
    "simple_cnn": "classifier.4",
    "lstm_classifier": "head",
    "rnn_classifier": "head",
    "attention_classifier": "head",
}


def build(name: str, num_classes: int = 4, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = {"num_classes": num_classes}
    if get_model_spec(name).task == "text":
        kwargs.update(vocab_size=VOCAB, embed_dim=16)
    return create_model(name, **kwargs).eval()


def example(name: str) -> torch.Tensor:
    spec = get_model_spec(name)
    gen = torch.Generator().manual_seed(5)
    if spec.task == "text":
        return torch.randint(0, VOCAB, (2, 6), generator=gen)
    side = spec.input_size[1] if name == "simple_cnn" else 32
    return torch.randn(2, spec.input_size[0], side, side, generator=gen)


def test_every_model_names_its_head():
    assert set(EXPECTED_HEADS) == set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_head_convention(name):
    model = build(name)
    assert head_name(model) == EXPECTED_HEADS[name]
    head = get_classifier(model)
    assert isinstance(head, (torch.nn.Linear, torch.nn.Conv2d))
    assert head.weight.shape[0] == 4  # the layer that produces the logits
    assert head_parameter_names(model) == [f"{EXPECTED_HEADS[name]}.weight", f"{EXPECTED_HEADS[name]}.bias"]


@pytest.mark.parametrize("name", list_models())
def test_round_trip_through_a_file_gives_identical_outputs(name, tmp_path):
    source, fresh = build(name, seed=0), build(name, seed=1)
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    report = load_weights(fresh, path)
    assert report.skipped == [] and report.missing == [] and report.unexpected == []
    assert len(report.loaded) == len(source.state_dict())
    x = example(name)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), source(x), rtol=0, atol=0)


def test_edgecv_checkpoint_and_wrapped_state_dicts_load(tmp_path):
    source = build("squeezenet1_1")
    path = save_checkpoint({"model": "squeezenet1_1", "model_kwargs": {"num_classes": 4},
                            "state_dict": source.state_dict(), "task": "image"}, tmp_path / "ck.pt")
    for origin in (path, {"state_dict": source.state_dict()},
                   {f"module.{k}": v for k, v in source.state_dict().items()}):
        target = build("squeezenet1_1", seed=9)
        load_weights(target, origin)
        for key, value in source.state_dict().items():
            assert torch.equal(target.state_dict()[key], value), key


@pytest.mark.parametrize("name", list_models())
def test_replace_head(name):
    model = build(name)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    new = replace_head(model, 7)
    assert get_classifier(model) is new and new.weight.shape[0] == 7
    with torch.no_grad():
        assert model(example(name)).shape == (2, 7)
    assert model.edgecv_kwargs["num_classes"] == 7
    head = set(head_parameter_names(model))
    for key, value in model.state_dict().items():
        if key not in head:
            assert torch.equal(value, before[key]), key  # backbone untouched


@pytest.mark.parametrize("name", list_models())
def test_freeze_backbone_trains_only_the_head(name):
    model = build(name).train()
    trainable = freeze_backbone(model)
    assert trainable == head_parameter_names(model)
    model(example(name)).sum().backward()
    for param_name, param in model.named_parameters():
        assert (param.grad is not None) == (param_name in trainable), param_name
    assert len(freeze_backbone(model, frozen=False)) == len(list(model.parameters()))


@pytest.mark.parametrize("name", ["mobilenet_v3_small", "squeezenet1_1", "attention_classifier"])
def test_imagenet_style_weights_into_a_smaller_head_keep_the_backbone(name, tmp_path):
    """1000-class (or 9-class) weights into a 5-class model: backbone loaded, head left fresh."""
    classes = 1000 if get_model_spec(name).task == "image" else 9
    pretrained, target = build(name, num_classes=classes, seed=0), build(name, num_classes=5, seed=1)
    fresh_head = {k: v.clone() for k, v in target.state_dict().items() if k.startswith(head_name(target) + ".")}
    torch.save(pretrained.state_dict(), tmp_path / "pretrained.pth")
    report = load_weights(target, tmp_path / "pretrained.pth")  # shape differs -> head skipped
    assert set(report.skipped) == set(fresh_head)
    assert report.head_skipped and "kept a fresh head" in report.summary()
    state = target.state_dict()
    for key, value in pretrained.state_dict().items():
        if key in fresh_head:
            assert torch.equal(state[key], fresh_head[key])
        else:
            assert torch.equal(state[key], value), key


def test_skip_head_with_matching_shapes_keeps_the_current_head():
    pretrained, target = build("mobilenet_v2", seed=0), build("mobilenet_v2", seed=1)
    head_before = get_classifier(target).weight.clone()
    report = load_weights(target, pretrained.state_dict(), skip_head=True)
    assert report.skipped == ["classifier.1.weight", "classifier.1.bias"]
    assert torch.equal(get_classifier(target).weight, head_before)
    assert torch.equal(target.features[0][0].weight, pretrained.features[0][0].weight)


def test_wrong_architecture_is_a_one_line_error(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save(build("mobilenet_v3_small").state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        load_weights(build("mobilenet_v2"), path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: does not fit mobilenet_v2: ")
    assert "missing keys (features.1.conv.0.0.weight, " in message
    assert "unexpected keys (features.1.block.0.0.weight, " in message
    assert "more)" in message  # long key lists are truncated
    assert "wrong shape (features.0.0.weight [16, 3, 3, 3] vs [32, 3, 3, 3]" in message


def test_disjoint_architecture_fails_even_when_not_strict():
    with pytest.raises(CheckpointError, match="does not fit lstm_classifier"):
        load_weights(build("lstm_classifier"), build("squeezenet1_0").state_dict(), strict=False)


def test_edgecv_checkpoint_of_another_model_names_it(tmp_path):
    path = save_checkpoint({"model": "squeezenet1_0", "state_dict": build("squeezenet1_0").state_dict()},
                           tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"does not fit squeezenet1_1 \(checkpoint was saved from 'squeezenet1_0'\)"):
        load_weights(build("squeezenet1_1"), path)


def test_non_strict_load_reports_what_did_not_fit():
    source = build("mobilenet_v2").state_dict()
    del source["features.0.0.weight"]
    source["extra.weight"] = torch.zeros(1)
    source["features.1.conv.1.weight"] = torch.zeros(3)  # wrong shape, not the head
    target = build("mobilenet_v2", seed=1)
    with pytest.raises(CheckpointError, match="1 missing keys .*1 unexpected keys .*1 with the wrong shape"):
        load_weights(target, source)
    report = load_weights(target, source, strict=False)
    assert report.missing == ["features.0.0.weight"]
    assert report.unexpected == ["extra.weight"]
    assert report.mismatched == ["features.1.conv.1.weight"]


def test_unreadable_file_is_a_checkpoint_error(tmp_path):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="broken.pth"):
        load_weights(build("squeezenet1_1"), bad)


def test_replace_head_rejects_bad_class_count():
    with pytest.raises(ModelError, match="num_classes must be >= 1"):
        replace_head(build("squeezenet1_1"), 0)
