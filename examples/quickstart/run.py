"""The quickstart: build the example model, register and deploy it, then start the server.

    python examples/quickstart/run.py            # serves on http://127.0.0.1:8000
    python examples/quickstart/run.py --no-serve # register + deploy + one prediction, then exit

The deployment is recorded in the registry, so the server restores it on start — exactly what happens after a
restart in production.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_model import N_FEATURES, build  # noqa: E402
from modelyard import Platform  # noqa: E402

CONFIG = HERE / "modelyard.toml"


def prepare() -> None:
    """Register the model (once per distinct artifact) and deploy it as ``churn``."""
    model_path = build(HERE / "churn.onnx")
    with Platform.from_config(CONFIG) as platform:
        existing = platform.registry.search(prefix="churn", limit=1000).items
        digest = platform.storage.put(model_path).digest
        version = next((v for v in existing if v.model == "churn" and v.artifact.digest == digest), None)
        if version is None:
            version = platform.registry.register(
                "churn", model_path, flavor="onnx", tags={"team": "growth", "example": "quickstart"},
                lineage={"code_ref": "examples/quickstart/build_model.py"}, alias="production",
                description="20-feature churn classifier (logistic regression)")
            print(f"registered churn:{version.number} ({version.artifact.uri[:19]}…)")
        platform.deploy("churn@production", name="churn", batching={"max_batch_size": 32, "max_wait_ms": 2})
        x = np.random.default_rng(1).normal(size=(1, N_FEATURES)).astype(np.float32)
        out = platform.predict("churn", {"float_input": x})
        print(f"deployed churn; a local prediction: probability={out['probability'].ravel()[0]:.3f}")


def curl_line(host: str, port: int) -> str:
    """The curl command that gets a prediction from the running server."""
    body = {"inputs": [{"name": "float_input", "shape": [1, N_FEATURES], "datatype": "FP32",
                        "data": [round(v, 2) for v in np.linspace(-1, 1, N_FEATURES).tolist()]}]}
    return (f"curl -s -X POST http://{host}:{port}/v2/models/churn/infer "
            f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'")


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound right now (``modelyard serve`` checks again when it starts)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-serve", action="store_true", help="prepare only, do not start the server")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    # Checked before anything is built, so a busy port is reported at once rather than after a curl line that
    # could never work.
    if not args.no_serve and not port_is_free("127.0.0.1", args.port):
        print(f"port {args.port} on 127.0.0.1 is already in use; pass --port with a free port "
              f"(python examples/quickstart/run.py --port 8001)", file=sys.stderr)
        raise SystemExit(1)
    prepare()
    if args.no_serve:
        return
    print("\nThe server is starting. Get a prediction with:\n\n  " + curl_line("127.0.0.1", args.port) + "\n",
          flush=True)
    cli = [sys.executable, "-m", "modelyard", "serve", "-c", str(CONFIG), "--dev", "--port", str(args.port)]
    os.execv(sys.executable, cli)


if __name__ == "__main__":
    main()
