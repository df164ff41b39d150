"""mmal_jax: multimodal active learning with unaligned data, in JAX/Flax.

Data flows one way, and the modules are named after the steps:
data -> embeddings -> acquisition -> oracle (the annotator) -> training -> evaluation -> logs,
then experiment (public setup), loop (a round: propose, then learn) and main.
"""
