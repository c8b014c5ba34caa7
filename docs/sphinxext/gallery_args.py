"""Command-line arguments the gallery examples are executed with."""

import os
import tempfile


def reset_argv(gallery_conf, script_vars):
    """Send the examples' figure files to a scratch folder, not the source tree.

    Every example except ``quickstart.py`` reads ``--out`` (the folder its
    ``savefig`` writes to); the gallery captures the figures itself.
    """
    if os.path.basename(script_vars["src_file"]) == "quickstart.py":
        return []
    out = os.path.join(tempfile.gettempdir(), "sklottery_docs_examples")
    return ["--out", out]


#: Gallery order: from a one-minute start to the long image experiments.
ORDER = (
    "quickstart.py",
    "plot_ticket_vs_random_digits.py",
    "plot_pruning_at_init.py",
    "plot_regression_diabetes.py",
    "plot_grid_search.py",
    "plot_learning_rate_liu.py",
    "plot_structured_liu.py",
    "plot_fashion_mnist_lenet.py",
    "plot_fashion_mnist_conv2.py",
)


class ExampleOrder:
    """Sort key of sphinx-gallery's ``within_subsection_order``: :data:`ORDER`,
    then any other example by file name."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __call__(self, filename):
        name = os.path.basename(str(filename))
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)
