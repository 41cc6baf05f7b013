"""Alignment between embedding spaces: mutual k-NN, permutation nulls, trend tests, CKA."""
