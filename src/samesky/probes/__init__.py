"""Property probes on frozen embeddings (the AstroCLIP benchmark): targets, kNN and MLP
regressors with bootstrap CIs, robustness groupings, and embedding-structure analyses."""
