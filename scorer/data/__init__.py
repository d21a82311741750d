"""Data files of the scorer (the GIF-title reaction vocabulary), read with importlib.resources."""
