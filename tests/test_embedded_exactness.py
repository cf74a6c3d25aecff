"""The embedded model through the whole stack equals plain transformers greedy generation."""

from __future__ import annotations

import pytest
import torch
from langchain_core.messages import HumanMessage

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine import packed

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize("question", ["What is the capital of France?", "Name three primary colors."])
def test_own_base_greedy_equals_transformers_generate(question):
    base = ChatAttentionBuckets().load().base
    llm = ChatAttentionBuckets(bases=base, temperature=0, max_tokens=24, prefix_cache=False)
    loaded = llm.load()
    if loaded.device.type == "cpu" and loaded.dtype == torch.float32 and packed.available():
        assert llm.engine().packed_weights is not None  # the packed linear layers are what runs here
    ids = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    with torch.inference_mode():
        ref = loaded.model.generate(torch.tensor([ids], device=loaded.device), max_new_tokens=24, do_sample=False,
                                    eos_token_id=sorted(loaded.eos_token_ids), pad_token_id=sorted(loaded.eos_token_ids)[0])
    expected = loaded.tokenizer.decode(ref[0, len(ids):], skip_special_tokens=True)
    msg = llm.invoke([HumanMessage(question)])
    assert msg.content.strip() == expected.strip()
    assert msg.usage_metadata["input_tokens"] == len(ids)
