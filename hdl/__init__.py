"""Amaranth gateware of the lifgate neuron array (installed as ``lifgate.hdl``)."""
