"""Contrastive losses and the train loop (`fit`) of the two-tower models."""
