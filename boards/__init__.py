"""Board tops, host link, build and flash (installed as ``lifgate.boards``)."""
