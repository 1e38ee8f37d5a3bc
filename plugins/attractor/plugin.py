"""Registers the attractor defense and purifier through the ``robustlearn.plugins`` entry point."""
