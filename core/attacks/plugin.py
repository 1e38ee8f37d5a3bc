"""Registers the built-in attacks through the ``robustlearn.plugins`` entry point."""
