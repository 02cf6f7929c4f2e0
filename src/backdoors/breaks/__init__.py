"""Attacks on the constructions: forgery strategies, edge-case signatures, support
search on toy sizes."""
