"""The unaligned world, the annotator interface and the simulated oracle; the human annotation tool
grows here. Below the loop, above acquisition and training (neither imports it)."""
