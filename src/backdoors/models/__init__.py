"""Offline data sets, the torch classifier with scikit-learn's contract, adapters."""
