"""Downstream tasks on frozen embeddings (issue 18): morphology classification with seed 003's protocol,
a redshift probe, and similarity search (AstroCLIP's remaining downstream suite)."""
