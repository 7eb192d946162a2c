"""The model contract round-trips through ONNX metadata_props and rejects what it cannot read."""
from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from edgecv.contract import ModelContract, contract_from_model, embed_contract, read_contract
from edgecv.errors import InputError, ModelError
from edgecv.onnx_file import graph_inputs, load_onnx
from edgecv.preprocess import default_spec
from edgecv.tokenizer import WordTokenizer


def _identity_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_image_contract_round_trips_through_a_file(tmp_path) -> None:
    model = _identity_model()
    model.metadata_props.add(key="author", value="someone")  # foreign keys are kept
    contract = ModelContract(task="image", labels=["cat", "dog", "fox"], architecture="simple_cnn",
                             model_kwargs={"num_classes": 3}, preprocess=default_spec(size=64),
                             parity={"passed": True, "max_abs": 1e-6})
    embed_contract(model, contract)
    embed_contract(model, contract)  # idempotent: no duplicated keys
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_contract(path) == contract
    keys = [p.key for p in load_onnx(path).metadata_props]
    assert len(keys) == len(set(keys)) and "author" in keys
    assert "64x64" in contract.describe()


def test_text_contract_and_foreign_models() -> None:
    tok = WordTokenizer.fit(["a b"]).to_dict()
    contract = ModelContract(task="text", labels=["neg", "pos"], tokenizer=tok)
    model = _identity_model()
    assert contract_from_model(model) is None  # foreign model: no contract
    embed_contract(model, contract)
    assert contract_from_model(model).tokenizer == tok


def test_newer_schema_and_bad_task_are_errors() -> None:
    props = ModelContract(task="image", labels=["a"]).to_metadata()
    props["edgecv.schema_version"] = "99"
    with pytest.raises(ModelError, match="newer"):
        ModelContract.from_metadata(props)
    with pytest.raises(ModelError):
        ModelContract(task="audio", labels=[])


def test_graph_inputs_skip_initializers() -> None:
    model = _identity_model()
    model.graph.initializer.append(helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0]))
    model.graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]))
    assert [i.name for i in graph_inputs(model)] == ["input"]


@pytest.mark.parametrize("content,expected", [
    (b"", "file is empty"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1\n", "Git LFS pointer"),
    (b"hello, I am text", "not a valid ONNX model"),
])
def test_load_onnx_bad_files(tmp_path, content: bytes, expected: str) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises((InputError, ModelError), match=expected):
        load_onnx(path)


def test_load_onnx_truncated_and_directory(tmp_path) -> None:
    path = tmp_path / "t.onnx"
    data = _identity_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError):
        load_onnx(path)
    with pytest.raises(InputError, match="is a directory"):
        load_onnx(tmp_path)


def test_max_seq_len_round_trips_and_caps_the_tokenizer(tmp_path) -> None:
    """A declared maximum survives the file; the embedded tokenizer never produces longer ids."""
    tok = WordTokenizer.fit(["a b c"], max_len=64).to_dict()
    declared = ModelContract(task="text", labels=["neg", "pos"], tokenizer=tok, max_seq_len=32)
    assert declared.max_seq_len == 32 and declared.tokenizer["max_len"] == 32
    assert tok["max_len"] == 64  # the caller's dict is not modified
    model = _identity_model()
    embed_contract(model, declared)
    path = tmp_path / "text.onnx"
    onnx.save(model, str(path))
    again = read_contract(path)
    assert again == declared and again.max_seq_len == 32
    assert WordTokenizer.from_dict(again.tokenizer).encode(" ".join(["a"] * 50)) == [2] * 32
    assert "max_seq_len:   32 tokens" in again.describe()


def test_max_seq_len_defaults_to_the_tokenizer_and_older_files_read() -> None:
    tok = WordTokenizer.fit(["a b"], max_len=48).to_dict()
    assert ModelContract(task="text", labels=["x"], tokenizer=tok).max_seq_len == 48
    assert ModelContract(task="text", labels=["x"], tokenizer=tok, max_seq_len=100).tokenizer["max_len"] == 48
    assert ModelContract(task="image", labels=["x"]).max_seq_len is None
    props = ModelContract(task="text", labels=["x"], tokenizer=tok).to_metadata()
    assert props["edgecv.max_seq_len"] == "48"
    del props["edgecv.max_seq_len"]  # a file written before the key existed
    assert ModelContract.from_metadata(props).max_seq_len == 48


@pytest.mark.parametrize("value", ["0", '"64"', "true", "2.5"])
def test_bad_max_seq_len_names_the_file(value: str) -> None:
    props = ModelContract(task="text", labels=["x"]).to_metadata()
    props["edgecv.max_seq_len"] = value
    with pytest.raises(ModelError, match=r"^m\.onnx: model contract max_seq_len .*positive integer"):
        ModelContract.from_metadata(props, source="m.onnx")
