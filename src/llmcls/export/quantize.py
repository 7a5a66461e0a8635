"""Dynamic int8 quantization of an exported ONNX model (onnxruntime's quantizer), with settings that hold on every
x86 CPU the file may be served on.

The weights of the LSTMs and of every MatMul/Gemm with a stored weight are stored as int8; activations are
quantized on the fly. The embedding tables stay float (one scale for a whole table would blur its rows).

Why 7-bit weights, one scale per output channel: onnxruntime multiplies uint8 activations by int8 weights. On
CPUs without VNNI (AVX2-only, such as many AMD EPYC and older Intel parts) it sums pairs of products in 16 bits,
which saturates when both weights are near 127: measured on a 2-core AMD EPYC (AVX2), a MiniLM fine-tuned on CR
lost 1.3 points of validation accuracy in int8 with 8-bit weights. 7-bit weights (`reduce_range`) cannot
saturate there, and a scale per output channel (`per_channel`) wins back the precision the lost bit costs. A file
is quantized once and may be served on another CPU, so these settings are used everywhere; onnxruntime's own
documentation recommends them for non-VNNI machines. BENCHMARKS.md has the measurements.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

# Ops whose weights are stored as int8: the LSTMs, the linear layers (the encoder's projections and feed-forward
# blocks are MatMuls) and the heads.
QUANTIZED_OP_TYPES = ["LSTM", "MatMul", "Gemm"]
# The int8 op each float op becomes (named in the export manifest).
FLOAT_TO_INT8 = {"DynamicQuantizeLSTM": "LSTM", "MatMulInteger": "MatMul/Gemm"}


def quantize_int8(float_path: Path, *, prepared: Path, quantized: Path) -> Counter[str]:
    """Quantize the ONNX model at `float_path` into `quantized` (`prepared` holds the model after onnxruntime's
    shape inference and graph clean-up, which quantization needs). Returns the count of each op type in the
    quantized graph.

    Raises:
        ImportError: onnx or onnxruntime is not installed.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        quant_pre_process(str(float_path), str(prepared))
        quantize_dynamic(
            str(prepared),
            str(quantized),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=QUANTIZED_OP_TYPES,
        )
    finally:
        root.handlers[:] = handlers  # the quantizer's logging.warning calls would install a root handler
    return Counter(node.op_type for node in onnx.load(str(quantized)).graph.node)
