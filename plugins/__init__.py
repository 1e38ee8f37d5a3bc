"""Built-in robustlearn plugins, one folder each, registered through the
``robustlearn.plugins`` entry-point group like any third-party plugin."""
