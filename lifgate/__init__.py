"""lifgate: fixed-point leaky-integrate-and-fire neuron arrays, bit-exact from numpy to FPGA."""

__version__ = "0.1.0"
