"""Compilers from other worlds into lifgate configurations.

:mod:`~lifgate.compilers.quantize` maps biological units (mV, ms, nS, pA),
:mod:`~lifgate.compilers.convert` a trained ReLU network (ANN-to-SNN conversion) and
:mod:`~lifgate.compilers.nir_import` a NIR graph onto fixed-point configurations. They build on
the contract and the golden models only (docs/architecture.md); the application calls them.
"""
