"""The classifier as an ONNX graph, built node by node from the trained weights.

PyTorch's exporter cannot export packed sequences, so the graph is written directly with `onnx.helper`:
Gather (embedding) -> per layer the ONNX `LSTM` op with `sequence_lens` -> pooling -> MatMul + Add. The LSTM op
stops each sequence at its length, so its final states (Y_h) are exactly those of PyTorch's packed LSTM and its
outputs past a text's end are zero; no packing or sorting is needed at inference, and batch size and length are
free.

Inputs: `token_ids` int64 [batch, seq] (padded with any id), `lengths` int64 [batch] (each >= 1).
Output: `logits` float32 [batch, num_outputs].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

    from llmcls.model import ModelArgs

OPSET = 18
INPUTS = ("token_ids", "lengths")
OUTPUT = "logits"
# PyTorch stacks an LSTM's gates as (input, forget, cell, output); ONNX as (input, output, forget, cell).
_GATE_ORDER = (0, 3, 1, 2)


def _onnx_gates(w: np.ndarray) -> np.ndarray:
    """Reorder the 4 gate blocks along axis 0 of a PyTorch LSTM weight or bias from PyTorch's order to ONNX's."""
    blocks = np.split(w, 4)
    return np.concatenate([blocks[i] for i in _GATE_ORDER])


class _Graph:
    """The nodes and initializers of an ONNX graph being built; each node is named after its (first) output."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def model(self, name: str, num_outputs: int) -> onnx.ModelProto:
        """The checked model of these nodes: inputs INPUTS (token ids [batch, seq], lengths [batch], int64),
        output OUTPUT (logits [batch, num_outputs], float32)."""
        import onnx
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            name,
            inputs=[
                helper.make_tensor_value_info(INPUTS[0], TensorProto.INT64, ["batch", "seq"]),
                helper.make_tensor_value_info(INPUTS[1], TensorProto.INT64, ["batch"]),
            ],
            outputs=[helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", num_outputs])],
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="llmcls")
        model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases of the last two years
        onnx.checker.check_model(model, full_check=True)
        return model

    def node(self, op: str, inputs: list[str], output: str | list[str], **attrs) -> str:
        from onnx import helper

        outputs = [output] if isinstance(output, str) else output
        self.nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **attrs))
        return outputs[0]


def build_onnx_model(args: ModelArgs, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """An ONNX model computing the same logits as `LstmClassifier(args)` with `weights` in eval mode.

    Args:
        args: the network's constructor arguments.
        weights: the model's state dict as float32 numpy arrays (names as in `LstmClassifier.state_dict()`).

    Returns:
        A checked ONNX model (opset `OPSET`).
    """
    g = _Graph()
    x = _embedding(g, args, weights)
    x, y_h = _lstm_layers(g, args, weights, x)
    features = _pooling(g, args, x, y_h)
    projected = g.node("MatMul", [features, g.const("head_weight_t", weights["head.weight"].T)], "head_matmul")
    if args.wide_buckets:
        deep = g.node("Add", [projected, g.const("head_bias", weights["head.bias"])], "deep_logits")
        g.node("Add", [deep, _wide(g, args, weights)], OUTPUT)
    else:
        g.node("Add", [projected, g.const("head_bias", weights["head.bias"])], OUTPUT)

    return g.model("llmcls_lstm_classifier", args.num_outputs)


def _embedding(g: _Graph, args: ModelArgs, weights: dict[str, np.ndarray]) -> str:
    """token_ids [batch, seq] -> embedded [seq, batch, emb] (ONNX's LSTM takes the sequence first)."""
    table = weights["embedding.weight"]
    if args.fixed_vocab_size:  # ids >= vocab_size index the fixed pretrained rows, which follow the learned ones
        table = np.concatenate([table, weights["fixed_embedding.weight"]])
    g.const("embedding", table.astype(np.float32))
    ids_t = g.node("Transpose", ["token_ids"], "ids_seq_first", perm=[1, 0])  # [seq, batch]
    return g.node("Gather", ["embedding", ids_t], "embedded")  # [seq, batch, emb]


def _lstm_layers(g: _Graph, args: ModelArgs, weights: dict[str, np.ndarray], x: str) -> tuple[str, str]:
    """The stacked (bi)LSTM: its output [seq, batch, dirs * H] and the last layer's final states Y_h."""
    from onnx import TensorProto

    seq_lens = g.node("Cast", ["lengths"], "seq_lens", to=TensorProto.INT32)  # [batch]
    g.const("shape_seq_batch_features", np.array([0, 0, -1], dtype=np.int64))
    y_h = ""
    for layer in range(args.num_layers):
        suffixes = [f"_l{layer}"] + ([f"_l{layer}_reverse"] if args.bidirectional else [])
        w = np.stack([_onnx_gates(weights[f"lstm.weight_ih{s}"]) for s in suffixes])  # [dirs, 4H, in]
        r = np.stack([_onnx_gates(weights[f"lstm.weight_hh{s}"]) for s in suffixes])  # [dirs, 4H, H]
        b = np.stack(
            [
                np.concatenate([_onnx_gates(weights[f"lstm.bias_ih{s}"]), _onnx_gates(weights[f"lstm.bias_hh{s}"])])
                for s in suffixes
            ]
        )  # [dirs, 8H]
        y_h = f"Y_h{layer}"  # [dirs, batch, H]: each direction's state at the text's end
        y = g.node(
            "LSTM",
            [x, g.const(f"W{layer}", w), g.const(f"R{layer}", r), g.const(f"B{layer}", b), seq_lens],
            [f"Y{layer}", y_h],
            hidden_size=args.hidden_size,
            direction="bidirectional" if args.bidirectional else "forward",
        )
        # Y: [seq, dirs, batch, H] -> [seq, batch, dirs * H], forward then backward as PyTorch concatenates
        y = g.node("Transpose", [y], f"Y{layer}_t", perm=[0, 2, 1, 3])
        x = g.node("Reshape", [y, "shape_seq_batch_features"], f"layer{layer}_out")
    return x, y_h


def _wide(g: _Graph, args: ModelArgs, weights: dict[str, np.ndarray]) -> str:
    """The wide branch's logits [batch, num_outputs]: the sum of the table rows of each text's word ids and hashed
    word bigrams over the square root of their number (`llmcls.model.WideNgrams`), padding masked out."""
    from onnx import TensorProto

    from llmcls.model import BIGRAM_PRIME

    def const(name: str, value: int) -> str:
        return g.const(name, np.array([value], dtype=np.int64))

    table = g.const("wide_table", weights["wide.table.weight"].astype(np.float32))
    axis1 = const("wide_axis1", 1)
    first = g.node("Slice", ["token_ids", const("wide_zero", 0), const("wide_minus1", -1), axis1], "wide_first")
    second = g.node("Slice", ["token_ids", const("wide_one", 1), const("wide_end", 1 << 62), axis1], "wide_second")
    hashed = g.node(
        "Mod",
        [
            g.node(
                "Add", [g.node("Mul", [first, const("wide_prime", BIGRAM_PRIME)], "wide_scaled"), second], "wide_pair"
            ),
            const("wide_buckets", args.wide_buckets),
        ],
        "wide_hashed",
    )
    bigrams = g.node("Add", [hashed, const("wide_offset", args.vocab_size + args.fixed_vocab_size)], "wide_bigrams")
    ids = g.node("Concat", ["token_ids", bigrams], "wide_ids", axis=1)  # [batch, 2 * seq - 1]
    seq_len = g.node(
        "Gather",
        [g.node("Shape", ["token_ids"], "wide_shape"), g.const("wide_seq_axis", np.array(1, dtype=np.int64))],
        "wide_seq_len",
    )
    steps = g.node(
        "Range",
        [
            g.const("wide_start", np.array(0, dtype=np.int64)),
            seq_len,
            g.const("wide_step", np.array(1, dtype=np.int64)),
        ],
        "wide_steps",
    )  # [seq]
    real = g.node(
        "Less",
        [
            g.node("Unsqueeze", [steps, const("wide_axis0", 0)], "wide_steps_row"),
            g.node("Unsqueeze", ["lengths", axis1], "wide_lengths_col"),
        ],
        "wide_real",
    )  # [batch, seq]
    real_f = g.node("Cast", [real], "wide_real_f", to=TensorProto.FLOAT)
    after_first = g.node("Slice", [real_f, "wide_one", "wide_end", axis1], "wide_real_pairs")
    mask = g.node("Concat", [real_f, after_first], "wide_mask", axis=1)  # [batch, 2 * seq - 1]
    rows = g.node("Gather", [table, ids], "wide_rows")  # [batch, 2 * seq - 1, num_outputs]
    masked = g.node("Mul", [rows, g.node("Unsqueeze", [mask, const("wide_axis2", 2)], "wide_mask3")], "wide_masked")
    total = g.node("ReduceSum", [masked, axis1], "wide_total", keepdims=0)  # [batch, num_outputs]
    count = g.node("ReduceSum", [mask, axis1], "wide_count", keepdims=1)  # [batch, 1]
    return g.node("Div", [total, g.node("Sqrt", [count], "wide_norm")], "wide_logits")


def _pooling(g: _Graph, args: ModelArgs, x: str, y_h: str) -> str:
    """The features [batch, features] the head reads, as `args.pooling` says (padding masked out)."""
    from onnx import TensorProto

    pieces = []
    if args.pooling in ("last", "last_max"):
        # Y_h: [dirs, batch, H] -> [batch, dirs * H]
        last = g.node("Transpose", [y_h], "last_t", perm=[1, 0, 2])
        pieces.append(
            g.node("Reshape", [last, g.const("shape_batch_features", np.array([0, -1], dtype=np.int64))], "pooled_last")
        )
    if args.pooling in ("max", "mean", "last_max"):
        axis0 = g.const("axis0", np.array([0], dtype=np.int64))
        seq_len = g.node(
            "Gather",
            [g.node("Shape", ["token_ids"], "ids_shape"), g.const("one", np.array(1, dtype=np.int64))],
            "seq_len",
        )
        steps = g.node(
            "Range",
            [g.const("zero", np.array(0, dtype=np.int64)), seq_len, g.const("step", np.array(1, dtype=np.int64))],
            "steps",
        )  # [seq]
        mask = g.node(
            "Less",
            [
                g.node("Unsqueeze", [steps, g.const("axis1", np.array([1], dtype=np.int64))], "steps_col"),
                g.node("Unsqueeze", ["lengths", axis0], "lengths_row"),
            ],
            "mask",
        )  # [seq, batch]
        mask = g.node("Unsqueeze", [mask, g.const("axis2", np.array([2], dtype=np.int64))], "mask3")  # [seq, batch, 1]
        if args.pooling == "mean":
            total = g.node(
                "ReduceSum",
                [g.node("Mul", [x, g.node("Cast", [mask], "mask_f", to=TensorProto.FLOAT)], "masked"), axis0],
                "summed",
                keepdims=0,
            )  # [batch, features]
            count = g.node(
                "Unsqueeze",
                [
                    g.node("Cast", ["lengths"], "lengths_f", to=TensorProto.FLOAT),
                    g.const("axis1b", np.array([1], dtype=np.int64)),
                ],
                "count",
            )  # [batch, 1]
            pieces.append(g.node("Div", [total, count], "pooled_mean"))
        else:
            masked = g.node("Where", [mask, x, g.const("minus_inf", np.array(-np.inf, dtype=np.float32))], "masked")
            pieces.append(g.node("ReduceMax", [masked, axis0], "pooled_max", keepdims=0))
    return pieces[0] if len(pieces) == 1 else g.node("Concat", pieces, "features", axis=1)
