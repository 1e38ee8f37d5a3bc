"""Test helper shared by the safe-model-file tests: tampering with a saved file."""

import json

from safetensors.torch import load_file, save_file

from robustlearn import model_file


def rewrite(path, edit_header=None, edit_tensors=None):
    """Rewrite a model file with its header or tensors changed (a tampered file)."""
    tensors = load_file(str(path))
    header = model_file.read_header(path)
    if edit_header:
        edit_header(header)
    if edit_tensors:
        edit_tensors(tensors)
    save_file(tensors, str(path), metadata={"robustlearn": json.dumps(header)})
