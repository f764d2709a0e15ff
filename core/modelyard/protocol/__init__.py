"""Wire protocols spoken by modelyard's serving layer.

:mod:`modelyard.protocol.v2` is the codec for the Open Inference Protocol v2 (KServe / Triton
HTTP/REST), including Triton's binary tensor data extension.
"""
