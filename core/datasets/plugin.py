"""Registers the built-in datasets through the ``robustlearn.plugins`` entry point."""

from robustlearn.hookspecs import hookimpl

from . import builtin


@hookimpl
def register_datasets(register):
    register("digits", builtin.load_digits_split,
             description="scikit-learn 8x8 digits, embedded (1347 train / 450 test)",
             paper="Alpaydin & Kaynak 1998, UCI optical recognition of handwritten digits")
    register("mnist", builtin.load_mnist, description="MNIST 28x28 digits",
             paper="LeCun, Bottou, Bengio, Haffner 1998")
    register("fashion-mnist", builtin.load_fashion_mnist,
             description="Fashion-MNIST 28x28 clothing images",
             paper="Xiao, Rasul, Vollgraf 2017, arXiv 1708.07747")
    register("cifar10", builtin.load_cifar10, description="CIFAR-10 32x32 colour images",
             paper="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images")
    register("cifar10-gray", builtin.load_cifar10_gray,
             description="CIFAR-10 in gray (ITU-R 601 luma)",
             paper="Krizhevsky 2009, Learning Multiple Layers of Features from Tiny Images")
