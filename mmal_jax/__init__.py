"""mmal_jax: multimodal active learning with unaligned data, in JAX/Flax.

Data flows one way, and the modules are named after the steps:
data -> embeddings -> acquisition -> oracle -> training -> evaluation -> logs.
"""
