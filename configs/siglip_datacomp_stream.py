"""DataComp streaming (Section 4.2, Fig. 2 right): img2dataset webdataset shards read in order,
buffers of 2048 pairs with B = 512 bought from each, a SigLIP model trained from scratch and
continued over the stream.

  python -m mmal_jax.main --config=configs/siglip_datacomp_stream.py \\
    --config.data.shards='/data/datacomp/shards/{00000000..00001287}.tar' \\
    --config.data.test_shards='/data/heldout/{00000..00001}.tar' --config.rounds=6250
  --config=configs/siglip_datacomp_stream.py:1024  Appendix C.2: buffers of 1024, B = 256.

Training (the paper: "from scratch, 1 epoch, batch 512"): round 0 evaluates a random model
(model.initialization="scratch", drawn from PRNGKey(seed)); every later round trains the previous
round's params on that round's newly bought pairs only (stream.continue_training), train.epochs
epochs of batch train.batch_size = B, so one epoch is one optimiser step per buffer. Adam's moments
restart each round. "ours" measures coverage against the last stream.annotated_window pairs bought
(4 buffers' size: 16 rounds of purchases), which are re-embedded each round: memory and time per round stay flat however
long the stream is. Evaluation: retrieval recall@1 both ways on the held-out split, and zero-shot
accuracy per attribute when a prompts.json lies next to its shards (DataComp's 38 tasks cannot be
downloaded here).

The defaults fit the synthetic stream that `python -m mmal_jax.data.webdataset --out=DIR
--num_pairs=100000` writes (DIR/train, DIR/test with prompts.json; 48 buffers of 2048 fit in its
100,000 pairs): the bundled tiny architecture (32 px, word tokenizer), untrained. For real DataComp,
set a real architecture and a SentencePiece tokenizer as in the README's "Real data and
checkpoints" (model.init is not read when initialization is "scratch").
"""

import ml_collections

from mmal_jax import defaults


def get_config(buffer_size="2048"):
  config = defaults.colorswap_experiment("sigmoid")
  buffer = int(buffer_size)
  # shards, test_shards: brace patterns, required (the other readers' fields are not read).
  config.data.name = "webdataset"
  config.data.shards = ml_collections.config_dict.placeholder(str)
  config.data.test_shards = ml_collections.config_dict.placeholder(str)
  config.stream.update(buffer_size=buffer, continue_training=True, annotated_window=4 * buffer)
  config.per_round = buffer // 4  # 25% of each buffer, as Section 4.2 and Appendix C.2
  config.coreset_size = buffer // 2  # B_C = 2 B
  config.rounds = 98304 // buffer  # every full buffer of a 100,000-pair stream
  config.model.initialization = "scratch"
  config.train.update(epochs=1, batch_size=buffer // 4, weight_decay=0.2, warmup_fraction=0.0)
  return config
