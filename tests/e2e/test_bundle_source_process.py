"""A ``BundleSource`` is plain data: shipped as JSON to a fresh process, which rebuilds the model from it with only
its own config and the installed plugins (DESIGN "plain data across processes")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import attrs
import numpy as np
import pytest
from modelyard.converter import from_json, to_json
from modelyard.platform import Platform
from modelyard.types import BundleSource

onnx = pytest.importorskip("onnx")

from tiny_models import linear_onnx  # noqa: E402

N = 4

# The worker: the same config, nothing else from the parent but the record on stdin.
CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    from modelyard.converter import from_json
    from modelyard.types import BundleSource
    from modelyard.platform import Platform
    from modelyard.types import Deployment

    config = json.loads(sys.argv[1])
    x = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
    source = from_json(BundleSource, json.loads(sys.stdin.read()))
    with Platform.from_config(config) as platform:
        model = platform.loader.load(source)  # fetch into this process's cache, load with its builder
        direct = model.predict({"x": x})["y"]
        model.close()
        # And served by this process's runtime, which got the loader through its provider context.
        platform.runtime.deploy(Deployment(name="worker", model=source.model, version=source.version,
                                           runtime="local"), source)
        prediction = platform.predict_full("worker", {"x": x})
        print(json.dumps({"direct": direct.tolist(), "served": prediction.outputs["y"].tolist(),
                          "version": prediction.version, "dtype": str(prediction.outputs["y"].dtype)}))
""")




def test_a_bundle_source_rebuilds_the_model_in_a_fresh_process(tmp_path: Path) -> None:
    config = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}
    x = np.random.default_rng(0).normal(size=(3, N)).astype(np.float32)
    with Platform.from_config(config) as platform:
        version = platform.registry.register("lin", linear_onnx(tmp_path / "lin.onnx", weights=np.random.default_rng(3).normal(size=(N, N))), flavor="onnx")
        source = platform.bundle_source(version)
        platform.deploy("lin")
        parent = platform.predict_full("lin", {"x": x})
        assert (parent.model, parent.version) == ("lin", version.number)

    # Plain data: every field is a string, a number or a signature of those — no closure over the platform.
    assert {f.name for f in attrs.fields(BundleSource)} == {"model", "version", "flavor", "digest", "size",
                                                            "signature", "locator"}
    assert source.locator == f"sha256:{version.artifact.digest}"
    shipped = json.dumps(to_json(source))
    assert from_json(BundleSource, json.loads(shipped)) == source

    # The worker starts with an empty cache: it fetches from storage, verifying the digest.
    shutil.rmtree(tmp_path / "data" / "cache")
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(config), json.dumps(x.tolist())],
                          input=shipped, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    child = json.loads(done.stdout.strip().splitlines()[-1])
    assert child["version"] == version.number and child["dtype"] == "float32"
    np.testing.assert_array_equal(np.asarray(child["direct"], np.float32), parent.outputs["y"])
    np.testing.assert_array_equal(np.asarray(child["served"], np.float32), parent.outputs["y"])
    assert (tmp_path / "data" / "cache" / version.artifact.digest).exists()
