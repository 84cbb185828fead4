"""Numpy models: float references of the seed notebooks and the bit-accurate fixed-point model.

Installed as ``lifgate.golden``. Nothing here imports Amaranth.
"""
