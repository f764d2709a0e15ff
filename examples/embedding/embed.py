"""modelyard embedded in an application: no server, no config file — a ``Platform`` in your own process.

    python examples/embedding/embed.py

The script registers the quickstart's churn model, deploys it with dynamic batching, predicts from plain threads
and from asyncio (both paths merge concurrent rows into shared model calls), rolls out a second version without
dropping a request, handles the errors a caller meets, and closes everything. The platform lives in a temporary
directory, so the script leaves nothing behind. Only the core install is needed.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quickstart"))

from build_model import N_FEATURES, build
from modelyard import Platform
from modelyard.errors import InvalidInput, NotFound


def config_for(data_dir: str) -> dict:
    """The platform's config as a dict: the same sections and keys as modelyard.toml, validated the same way."""
    return {
        "platform": {"data_dir": data_dir, "log_level": "warning"},
        "runtime": {"use": "local", "threads": 2, "max_queue": 128},
    }


async def predict_concurrently(platform: Platform, rows: np.ndarray) -> np.ndarray:
    """One request per row from asyncio: ``apredict`` is what the server calls."""
    results = await asyncio.gather(*(platform.apredict("churn", {"float_input": row[None, :]}) for row in rows))
    return np.concatenate([r["probability"] for r in results])


def main() -> None:
    """Register, deploy, predict, roll out, handle errors, close."""
    rows = np.random.default_rng(7).normal(size=(64, N_FEATURES)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = build(Path(tmp) / "churn.onnx")
        with Platform.from_config(config_for(str(Path(tmp) / "platform"))) as platform:
            v1 = platform.registry.register("churn", model_path, flavor="onnx", alias="production",
                                            tags={"team": "growth"}, lineage={"code_ref": "examples/quickstart"})
            deployment = platform.deploy("churn", batching={"max_batch_size": 32, "max_wait_ms": 2})
            print(f"deployed {deployment.name} → {deployment.model}:{deployment.version} ({deployment.state})")

            # Sync callers in threads and async callers share the deployment's batches.
            whole = platform.predict("churn", {"float_input": rows})["probability"]
            with ThreadPoolExecutor(max_workers=8) as pool:
                per_row = list(pool.map(lambda r: platform.predict("churn", {"float_input": r[None, :]}), rows))
            threaded = np.concatenate([r["probability"] for r in per_row])
            concurrent = asyncio.run(predict_concurrently(platform, rows))
            np.testing.assert_allclose(threaded, whole, rtol=1e-6)
            np.testing.assert_allclose(concurrent, whole, rtol=1e-6)
            status = platform.runtime.status()["churn"]
            print(f"{status['requests']} requests answered in {status['batches']} model calls")

            # A new version: the deployment keeps serving v1 until v2 has loaded and answered a warm-up call.
            v2 = platform.registry.register("churn", model_path, flavor="onnx",
                                            lineage={"parent_version": v1.number})
            platform.registry.set_alias("churn", v2.number, "production")
            platform.deploy("churn@production", name="churn", batching={"max_batch_size": 32, "max_wait_ms": 2})
            print(f"churn now serves version {platform.get_deployment('churn').version}")

            # What callers get wrong, and what they are told.
            for bad in ({"float_input": rows[:, :5]}, {"features": rows}):
                try:
                    platform.predict("churn", bad)
                except InvalidInput as exc:
                    print(f"InvalidInput ({exc.status}, field {exc.field}): {exc}")
            try:
                platform.predict("fraud", {"float_input": rows})
            except NotFound as exc:
                print(f"NotFound ({exc.status}): {exc}")

            platform.undeploy("churn")
            assert platform.deployments() == []
    print("closed; nothing left behind")


if __name__ == "__main__":
    main()
