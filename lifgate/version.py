"""The version of lifgate; part of the contract floor, so every floor may name it."""

__version__ = "0.1.0"
