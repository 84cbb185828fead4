"""The application: the ``lifgate`` command line, its commands, the demo and its plots.

The top floor (docs/architecture.md): it may import every floor below, nothing imports it.
"""
