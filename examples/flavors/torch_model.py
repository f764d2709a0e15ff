"""A PyTorch model through the platform: register → deploy → predict, checked against torch's own output.

    python examples/flavors/torch_model.py

Needs ``pip install 'modelyard[torch]'``. The ``torch`` builder turns the in-memory ``nn.Module`` into a
``torch.export`` program (nothing is pickled), reads its signature, and validates the program on the sample input
before the version is recorded. The platform lives in a temporary directory, so the script leaves nothing behind.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch
from modelyard import Platform
from torch import nn

N_FEATURES = 8


class TinyClassifier(nn.Module):
    """Two linear layers and a softmax over three classes."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(N_FEATURES, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Class probabilities for a batch of feature rows."""
        return torch.softmax(self.out(torch.relu(self.hidden(features))), dim=-1)


def main() -> None:
    """Build the model, take it through the platform and compare the served output with torch's."""
    torch.manual_seed(0)
    model = TinyClassifier().eval()
    x = np.random.default_rng(0).normal(size=(5, N_FEATURES)).astype(np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()

    with tempfile.TemporaryDirectory() as data_dir, \
            Platform.from_config({"platform": {"data_dir": data_dir, "log_level": "warning"}}) as platform:
        version = platform.registry.register(
            "tiny-torch", model, flavor="torch",
            sample_input={"features": x[:1]},            # names the input and gives its dtype and shape
            expected_output={"probabilities": expected[:1]},
            options={"output_names": ["probabilities"]},
        )
        print(f"registered {version.ref} as {version.metadata['format']}: "
              f"inputs {[t.to_dict() for t in version.signature.inputs]}")
        platform.deploy(str(version.ref), name="tiny-torch")
        served = platform.predict("tiny-torch", {"features": x})["probabilities"]

    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-6)
    print(f"served output matches torch for {len(x)} rows (max abs diff {np.abs(served - expected).max():.2e})")


if __name__ == "__main__":
    main()
