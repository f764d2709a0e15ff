"""Importing this module warms onnx and onnxruntime up: it checks and runs a one-node model once.

The first ``onnx.checker`` call and the first onnxruntime session of a process cost ~15 ms of one-time setup
(schema tables, the runtime environment). The build forkserver imports this module once (it is in
``OnnxBuilder.build_preload``), so that each build process forked from it starts with that work done.
"""

from __future__ import annotations

import contextlib

import numpy as np


def warm_up() -> None:
    """Check, load and run a one-node model (Identity over one float)."""
    import onnx
    from onnx import TensorProto, helper

    from modelyard_plugins.onnx_builder.builder import SessionSettings, create_session

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "warmup",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    session = create_session(model.SerializeToString(), SessionSettings())
    session.run(["y"], {"x": np.zeros(1, np.float32)})


# The forkserver tolerates only ImportError from a preload: anything else would stop it, and every build with it.
# The warm-up is an optimisation only; a real build reports whatever is wrong.
with contextlib.suppress(Exception):
    warm_up()
