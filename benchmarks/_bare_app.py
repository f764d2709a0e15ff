"""The baseline of ``serving.py``: a bare Litestar app whose one route parses a V2 JSON body and calls onnxruntime.

    python benchmarks/_bare_app.py MODEL.onnx --port 8123

What a competent engineer writes without a platform: no auth, no metrics, no registry, no queue — the request is
decoded by Litestar (msgspec), the ONNX session runs right in the handler on the event loop (a ~20 µs call; a
thread hop would cost more than it does), the outputs go back as V2 JSON. uvicorn runs it with the settings
``modelyard serve`` uses: one worker, ``loop``/``http`` auto (uvloop and httptools when installed), access log
off. Not part of the modelyard package: it imports nothing from it.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

# V2 datatype <-> numpy dtype, for the types a small tabular model uses.
_NUMPY = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "INT32": np.int32, "BOOL": np.bool_}
_V2 = {np.dtype(v): k for k, v in _NUMPY.items()}


def create_app(model_path: str, name: str = "churn") -> Any:
    """The Litestar app serving ``model_path`` at ``POST /v2/models/{name}/infer``."""
    import onnxruntime as ort
    from litestar import Litestar, post
    from litestar.exceptions import HTTPException

    options = ort.SessionOptions()
    # One intra-op thread, like a serving runtime on a small machine: ORT's default spins a pool per core,
    # which for a 20-feature model only adds wake-up latency.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])

    @post("/v2/models/{model:str}/infer", status_code=200)
    async def infer(model: str, data: dict[str, Any]) -> dict[str, Any]:
        if model != name:
            raise HTTPException(status_code=404, detail=f"model {model!r} not found")
        feeds = {}
        for tensor in data["inputs"]:
            feeds[tensor["name"]] = np.asarray(tensor["data"], dtype=_NUMPY[tensor["datatype"]]).reshape(
                tensor["shape"])
        names = [o.name for o in session.get_outputs()]
        outputs = session.run(names, feeds)
        return {"model_name": name, "outputs": [
            {"name": n, "shape": list(a.shape), "datatype": _V2[a.dtype], "data": a.ravel().tolist()}
            for n, a in zip(names, outputs, strict=True)]}

    return Litestar(route_handlers=[infer], debug=False)


def main() -> None:
    """Parse arguments and serve until killed."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="churn")
    args = parser.parse_args()
    # The settings of `modelyard serve` (modelyard_plugins/server/serve.py), minus its logging setup.
    uvicorn.run(create_app(args.model, args.name), host="127.0.0.1", port=args.port, workers=1, loop="auto",
                http="auto", access_log=False, server_header=False, log_level="warning")


if __name__ == "__main__":
    main()
