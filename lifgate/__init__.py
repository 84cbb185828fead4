"""lifgate: fixed-point leaky-integrate-and-fire neuron arrays, bit-exact from numpy to FPGA."""

from lifgate.version import __version__

__all__ = ["__version__"]
