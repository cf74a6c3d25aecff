"""LangChain's standard test suites, run against the embedded SmolLM2-135M-Instruct.

The whole integration suite runs with two buckets (time); the agent-loop and structured-output
tests run again with every setting at its default (six buckets).

Every xfail below is about what a 135M-parameter model cannot do; each is listed with its
reason in docs/chat-model.md.
"""

from __future__ import annotations

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine.loading import embedded_model_path

# Two buckets (the model's own base and 1.8x, a ratio from the paper's set) keep the suite's ~60
# model calls within the test budget on a 2-core CPU; the suite checks LangChain behaviour, which
# does not depend on the number of buckets. A mild repetition penalty stops the greedy loops a
# 135M model falls into ("I'm a cat, I'm a cat, ...") before they eat max_tokens.
PARAMS = {"bases": [100000.0, 180000.0], "temperature": 0, "repetition_penalty": 1.2}
# The integration suite may bound the answers (the unit suite sets max_tokens itself).
INTEGRATION_PARAMS = {**PARAMS, "max_tokens": 96}

SMALL_MODEL = "SmolLM2-135M-Instruct (135M parameters) "


class _OurModel:
    """What both standard suites are told about this model."""

    @property
    def chat_model_class(self):
        return ChatAttentionBuckets

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def has_structured_output(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return str(embedded_model_path())


class TestChatAttentionBucketsUnit(_OurModel, ChatModelUnitTests):
    @property
    def chat_model_params(self) -> dict:
        return PARAMS

    @pytest.mark.xfail(
        strict=True,
        reason="langchain-core's load(..., allowed_objects='all') revives only the classes in its own "
        "registry; ChatAttentionBuckets round-trips with allowed_objects=[ChatAttentionBuckets] "
        "(test_chat_model.py). Adding it to the registry would let a serialized object switch on "
        "trust_remote_code, so it is not done.",
    )
    def test_serdes(self, model, snapshot) -> None:
        super().test_serdes(model, snapshot)


@pytest.mark.embedded  # the unit suite only builds the model; this one runs it
class TestChatAttentionBucketsIntegration(_OurModel, ChatModelIntegrationTests):
    @property
    def chat_model_params(self) -> dict:
        return INTEGRATION_PARAMS

    @pytest.mark.xfail(
        strict=False,
        reason=SMALL_MODEL + "does not follow the keys asked for in the prompt: JSON mode guarantees "
        "JSON, not its shape (json_schema mode guarantees the shape and passes)",
    )
    def test_json_mode(self, model) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        strict=False,
        reason=SMALL_MODEL + "fills the forced call's string argument with a placeholder such as "
        "'<string>' instead of copying the Chinese or Japanese name from the request (the grammar "
        "fixes the call's shape, not which characters the model chooses)",
    )
    def test_unicode_tool_call_integration(self, model, *args, **kwargs) -> None:
        super().test_unicode_tool_call_integration(model, *args, **kwargs)


@pytest.mark.embedded
class TestWithDefaultSettings:
    """The standard agent-loop and structured-output tests with every setting at its default
    (six buckets, the calibrated tool decision, no repetition penalty, max_tokens 512)."""

    suite = TestChatAttentionBucketsIntegration()

    @pytest.fixture
    def model(self, request):
        return ChatAttentionBuckets(**getattr(request, "param", {}))

    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model) -> None:
        ChatModelIntegrationTests.test_agent_loop(self.suite, model)

    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model, schema_type) -> None:
        ChatModelIntegrationTests.test_structured_output(self.suite, model, schema_type)
