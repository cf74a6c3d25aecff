"""The embedded model through the whole stack equals plain transformers greedy generation, up to rounding.

The engine's products round unlike transformers' own (packed oneDNN layers in fp32, other
kernels on AVX-512 than on AVX2, bf16 everywhere on a CPU whose ``dtype="auto"`` is bf16), so
the comparison states its tolerance (``agreement.LOGIT_TOLERANCE`` for the dtype that runs):
the first step's logits within it, and the greedy answer equal to transformers' up to the
first near-tie within it (where either pick is right and the texts may part). Run with
``ATTENTION_BUCKETS_CPU_DTYPE=bfloat16`` to check the bf16 path on any CPU (docs/performance.md).
"""

from __future__ import annotations

import os

import pytest
import torch
from agreement import LOGIT_TOLERANCE, assert_close_logits, assert_greedy_agrees
from langchain_core.messages import HumanMessage

from langchain_attention_buckets import ChatAttentionBuckets
from langchain_attention_buckets.engine import Request, loading, packed

pytestmark = pytest.mark.embedded


class Recorder:
    """A constraint that masks nothing and keeps every merged logit row the engine picks from."""

    def __init__(self):
        self.rows: list[torch.Tensor] = []

    def apply_mask(self, logits):
        self.rows.append(logits.detach().float().cpu().clone())
        return True

    def accept(self, token):
        pass

    def is_terminated(self):
        return False


@pytest.mark.parametrize("question", ["What is the capital of France?", "Name three primary colors."])
def test_own_base_greedy_equals_transformers_generate(question):
    base = ChatAttentionBuckets().load().base
    llm = ChatAttentionBuckets(bases=base, temperature=0, max_tokens=24, prefix_cache=False)
    loaded = llm.load()
    tol = LOGIT_TOLERANCE[loaded.dtype]
    forced = os.environ.get(loading.CPU_DTYPE_ENV)
    if forced and loaded.device.type == "cpu":
        assert loaded.dtype == loading.DTYPES[forced]  # the run checks the path it says it checks
    if loaded.device.type == "cpu" and loaded.dtype == torch.float32 and packed.available():
        assert llm.engine().packed_weights is not None  # the packed linear layers are what runs here
    ids = loaded.tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    eos = sorted(loaded.eos_token_ids)
    with torch.inference_mode():
        ref = loaded.model.generate(torch.tensor([ids], device=loaded.device), max_new_tokens=24, do_sample=False,
                                    eos_token_id=eos, pad_token_id=eos[0], output_logits=True, return_dict_in_generate=True)
    want = ref.sequences[0, len(ids):].tolist()
    want_logits = torch.stack([step[0].float().cpu() for step in ref.logits])
    rec = Recorder()
    res = llm.engine().generate(Request(tuple(ids), (base,), max_tokens=24, prefix_cache=False, constraint=rec))
    assert_close_logits(rec.rows[0], want_logits[0], tol, f"first step, {loaded.dtype}")
    parted = assert_greedy_agrees(res.token_ids, want, want_logits, tol, f"engine vs generate, {loaded.dtype}")
    # the chat model runs the same request on the same engine: the same tokens, as text
    msg = llm.invoke([HumanMessage(question)])
    assert msg.content.strip() == loaded.tokenizer.decode(res.token_ids, skip_special_tokens=True).strip()
    if parted is None:
        assert msg.content.strip() == loaded.tokenizer.decode(want, skip_special_tokens=True).strip()
    assert msg.usage_metadata["input_tokens"] == len(ids)
