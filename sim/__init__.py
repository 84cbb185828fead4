"""cocotb testbenches and simulator runners (installed as ``lifgate.sim``)."""
