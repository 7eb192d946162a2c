"""Registry behaviour: unknown names, duplicates, bad builder arguments, provenance attributes."""
from __future__ import annotations

import pytest

from edgecv.errors import ModelError
from edgecv.models import UnknownModelError, create_model, get_model_spec, list_models, register_model


def test_unknown_name_lists_valid_models():
    with pytest.raises(UnknownModelError) as info:
        create_model("mobilenet_v9")
    message = str(info.value)
    assert message.startswith("unknown model 'mobilenet_v9'; valid models: ")
    for name in list_models():
        assert name in message
    assert isinstance(info.value, ModelError) and isinstance(info.value, KeyError)
    with pytest.raises(UnknownModelError):
        get_model_spec("nope")


def test_duplicate_registration_raises():
    before = list_models()
    with pytest.raises(ValueError, match="'squeezenet1_1' is already registered"):
        register_model("squeezenet1_1", task="image", input_size=(3, 8, 8))(lambda **_: None)
    assert list_models() == before


def test_bad_task_rejected():
    with pytest.raises(ValueError, match="task must be"):
        register_model("never_registered", task="audio", input_size=(1,))


def test_bad_builder_arguments_are_a_model_error():
    with pytest.raises(ModelError, match="'squeezenet1_1': bad arguments"):
        create_model("squeezenet1_1", num_clases=3)
    with pytest.raises(ModelError, match="lstm_classifier"):
        create_model("lstm_classifier", num_classes=2)  # vocab_size is required


def test_builders_are_keyword_only():
    from edgecv.models.squeezenet import squeezenet1_1

    with pytest.raises(TypeError):
        squeezenet1_1(10)  # type: ignore[misc]


def test_created_model_remembers_how_it_was_built():
    model = create_model("mobilenet_v2", num_classes=7, width_mult=0.5)
    assert model.edgecv_name == "mobilenet_v2"
    assert model.edgecv_kwargs == {"num_classes": 7, "width_mult": 0.5}
    assert model.edgecv_spec is get_model_spec("mobilenet_v2")
