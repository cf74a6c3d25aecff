"""``attention-buckets bench speed``: what buckets cost, measured against one row in the same run.

Eight measurements (``--parts``), one module each, each a median over repeats after a
warm-up run:

- ``buckets``: for N in --buckets and each prompt length, time to first token
  (prefill), decode step time, KV-cache bytes and peak memory, as ratios to N = 1;
- ``sequential``: the N bases run one after another as separate single-row passes at
  every step (what the reference implementation does), against the same N as rows of
  one batch (added to the ``buckets`` rows);
- ``hf``: N = 1 against plain transformers ``generate`` on the same prompt;
- ``packed``: the engine with oneDNN-packed linear layers against the model's own;
- ``dtype``: float32 against bfloat16, speed and agreement of greedy answers;
- ``mask``: decode steps with a grammar against none;
- ``spec``: greedy decoding with speculation against without, on text the context
  predicts (a copy) and text it does not;
- ``agent``: time to first token of the turns of a three-turn tool loop over a long
  tool context, with and without the prefix cache.

Default: all but ``packed`` and ``dtype``. ``command`` holds the table of parts and the
loop; ``common`` what they share. Results go to the terminal (a table), ``speed.json``
and ``speed.png`` in --output.
"""

from .command import PARTS, add_speed_arguments, speed_main

__all__ = ["PARTS", "add_speed_arguments", "speed_main"]
