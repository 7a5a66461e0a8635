"""The BERT-family encoder classifier (`llmcls.encoder.bert.EncoderClassifier`) as an ONNX graph, built node by
node from the trained weights like the BiLSTM's (`llmcls.export.graph`), whose inputs, output and opset it shares.

The graph does what the torch module does: it puts [CLS] before and [SEP] after each text's content ids and the
pad id after that (whatever ids the input has past a text's length), looks up the word embeddings and adds the
position and token-type ones, then runs each post-LayerNorm layer (self-attention with an additive mask on the
padded keys, made once for all layers; GELU feed-forward block), pools (`mean` over the real positions, [CLS] and
[SEP] included, or the [CLS] state) and applies the head. Each linear layer is a MatMul with the transposed
weight as an initializer plus an Add of the bias, so that onnxruntime's dynamic int8 quantization of MatMul
applies to all of them; the attention scale 1/sqrt(head_dim) is folded into the query weight and bias.

Inputs: `token_ids` int64 [batch, seq] (padded at the end with any id; seq <= max_positions - 2), `lengths` int64
[batch] (each >= 1).
Output: `logits` float32 [batch, num_outputs].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from llmcls.export.graph import INPUTS, OUTPUT, _Graph

if TYPE_CHECKING:
    import onnx

    from llmcls.encoder.bert import EncoderArgs

# Added to the attention scores of padded keys: their softmax weight underflows to exactly 0, and since [CLS] is
# always a real key no row is fully masked, so no NaN can appear.
MASKED_SCORE = -1e9


def build_encoder_onnx(args: EncoderArgs, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """An ONNX model computing the same logits as `EncoderClassifier(args)` with `weights` in eval mode.

    Args:
        args: the network's constructor arguments.
        weights: the model's state dict as numpy arrays (names as in `EncoderClassifier.state_dict()`).

    Returns:
        A checked ONNX model (opset `OPSET`): inputs token_ids int64 [batch, seq] and lengths int64 [batch] (each
        >= 1, seq <= max_positions - 2), output logits float32 [batch, num_outputs].
    """
    g = _Graph()
    _shared_constants(g, args)
    steps, ids, real = _with_specials(g, args)
    x = _embeddings(g, args, weights, ids, steps)
    mask = _attention_mask(g, real)
    for layer in range(args.num_layers):
        x = _encoder_layer(g, args, weights, x, mask, layer)
    pooled = _pooling(g, args, x, real)
    _linear(g, weights, "head", pooled, OUTPUT)

    return g.model("llmcls_encoder_classifier", args.num_outputs)


def _small_const(g: _Graph, name: str, value: np.ndarray) -> str:
    """A constant that keeps its rank, 0 included (`_Graph.const` stores a 0-d array as shape [1])."""
    from onnx import numpy_helper

    g.inits.append(numpy_helper.from_array(value, name))
    return name


def _int64(g: _Graph, name: str, value: int | list[int]) -> str:
    """An int64 constant: a scalar for an int, a 1-D tensor for a list."""
    return _small_const(g, name, np.array(value, dtype=np.int64))


def _shared_constants(g: _Graph, args: EncoderArgs) -> None:
    """The constants that several nodes or every layer read, each stored once under the name they use."""
    for name, value in (
        ("zero", 0),
        ("one", 1),
        ("two", 2),
        ("axes1", [1]),
        ("axes12", [1, 2]),
        ("shape_heads", [0, 0, args.num_heads, args.hidden_size // args.num_heads]),
        ("shape_merged", [0, 0, args.hidden_size]),
    ):
        _int64(g, name, value)
    for name, number in (
        ("float_half", 0.5),
        ("float_one", 1.0),
        ("sqrt2", np.sqrt(2.0)),
        ("score_kept", 0.0),
        ("score_masked", MASKED_SCORE),
    ):
        _small_const(g, name, np.array(number, dtype=np.float32))


def _with_specials(g: _Graph, args: EncoderArgs) -> tuple[str, str, str]:
    """[CLS] text [SEP] padding, as `EncoderClassifier.with_specials`.

    Returns:
        The names of steps int64 [seq + 2] (0, 1, ...), ids int64 [batch, seq + 2] and real bool [batch, seq + 2]
        (True at [CLS], the text and [SEP]).
    """
    seq = g.node("Gather", [g.node("Shape", [INPUTS[0]], "ids_shape"), "one"], "seq")  # scalar
    width = g.node("Add", [seq, "two"], "width")  # scalar: seq + 2
    steps = g.node("Range", ["zero", width, "one"], "steps")  # [seq + 2]
    lengths_col = g.node("Unsqueeze", [INPUTS[1], "axes1"], "lengths_col")  # [batch, 1]
    ends = g.node("Add", [lengths_col, "one"], "ends")  # [batch, 1]: where [SEP] goes
    real = g.node("LessOrEqual", [steps, ends], "real")  # [batch, seq + 2]
    pad = _int64(g, "pad_index", args.pad_index)
    shifted = g.node("Pad", [INPUTS[0], _int64(g, "pads_1_1", [0, 1, 0, 1]), pad], "shifted")  # [batch, seq + 2]
    content = g.node("Where", [g.node("Less", [steps, ends], "before_sep"), shifted, pad], "content")
    with_sep = g.node(
        "Where",
        [g.node("Equal", [steps, ends], "at_sep"), _int64(g, "sep_index", args.sep_index), content],
        "ids_with_sep",
    )  # [batch, seq + 2]
    ids = g.node(
        "Where", [g.node("Equal", [steps, "zero"], "at_cls"), _int64(g, "cls_index", args.cls_index), with_sep], "ids"
    )  # [batch, seq + 2]
    return steps, ids, real


def _embeddings(g: _Graph, args: EncoderArgs, weights: dict[str, np.ndarray], ids: str, steps: str) -> str:
    """Word + position + token-type (0) embeddings, LayerNorm: [batch, seq + 2, hidden]."""
    # the token-type row is the same at every position: folded into the position table once
    positions = weights["position_embeddings.weight"] + weights["type_embeddings.weight"][0]  # [max_positions, H]
    words = g.node(
        "Gather", [g.const("word_embeddings", weights["word_embeddings.weight"].astype(np.float32)), ids], "words"
    )  # [batch, seq + 2, hidden]
    position_rows = g.node(
        "Gather", [g.const("position_type_embeddings", positions.astype(np.float32)), steps], "position_rows"
    )  # [seq + 2, hidden]
    summed = g.node("Add", [words, position_rows], "embedded")  # [batch, seq + 2, hidden]
    return _layer_norm(g, args, weights, "embedding_norm", summed, "embeddings")


def _attention_mask(g: _Graph, real: str) -> str:
    """The additive attention mask of all layers: 0 on real keys, MASKED_SCORE on padding, [batch, 1, 1, seq + 2]."""
    additive = g.node("Where", [real, "score_kept", "score_masked"], "mask_scores")  # [batch, seq + 2]
    return g.node("Unsqueeze", [additive, "axes12"], "attention_mask")


def _linear(g: _Graph, weights: dict[str, np.ndarray], module: str, x: str, output: str, scale: float = 1.0) -> str:
    """x @ W.T + b of the nn.Linear `module` (times `scale`, folded into W and b): [..., in] -> [..., out]."""
    name = module.replace(".", "_")
    w_t = (weights[f"{module}.weight"].T * scale).astype(np.float32)  # [in, out]
    projected = g.node("MatMul", [x, g.const(f"{name}_weight_t", w_t)], f"{name}_matmul")
    bias = (weights[f"{module}.bias"] * scale).astype(np.float32)
    return g.node("Add", [projected, g.const(f"{name}_bias", bias)], output)


def _layer_norm(g: _Graph, args: EncoderArgs, weights: dict[str, np.ndarray], module: str, x: str, output: str) -> str:
    """The nn.LayerNorm `module` over the last axis of x."""
    name = module.replace(".", "_")
    gamma = g.const(f"{name}_weight", weights[f"{module}.weight"].astype(np.float32))
    beta = g.const(f"{name}_bias", weights[f"{module}.bias"].astype(np.float32))
    return g.node("LayerNormalization", [x, gamma, beta], output, axis=-1, epsilon=args.layer_norm_eps)


def _encoder_layer(g: _Graph, args: EncoderArgs, weights: dict[str, np.ndarray], x: str, mask: str, layer: int) -> str:
    """One post-LayerNorm block (`EncoderLayer`): x [batch, seq + 2, hidden] -> [batch, seq + 2, hidden]."""
    p = f"layers.{layer}"
    n = f"l{layer}"
    context = _self_attention(g, args, weights, x, mask, layer)
    attended = _linear(g, weights, f"{p}.attention_out", context, f"{n}_attention_out")
    x = _layer_norm(
        g,
        args,
        weights,
        f"{p}.attention_norm",
        g.node("Add", [x, attended], f"{n}_attention_residual"),
        f"{n}_attention_normed",
    )
    inner = _gelu(g, _linear(g, weights, f"{p}.ffn_in", x, f"{n}_ffn_in"), n)  # [batch, seq + 2, intermediate]
    out = _linear(g, weights, f"{p}.ffn_out", inner, f"{n}_ffn_out")
    return _layer_norm(g, args, weights, f"{p}.ffn_norm", g.node("Add", [x, out], f"{n}_ffn_residual"), f"{n}_out")


def _self_attention(g: _Graph, args: EncoderArgs, weights: dict[str, np.ndarray], x: str, mask: str, layer: int) -> str:
    """Multi-head scaled dot-product attention of layer `layer`, heads merged: [batch, seq + 2, hidden]."""
    from llmcls.encoder.bert import attention_scale

    p, n = f"layers.{layer}", f"l{layer}"

    def heads(module: str, perm: list[int], scale: float = 1.0) -> str:
        projected = _linear(g, weights, f"{p}.{module}", x, f"{n}_{module}", scale)  # [batch, seq + 2, hidden]
        split = g.node("Reshape", [projected, "shape_heads"], f"{n}_{module}_split")  # [batch, seq+2, heads, dim]
        return g.node("Transpose", [split], f"{n}_{module}_heads", perm=perm)

    query = heads("query", [0, 2, 1, 3], attention_scale(args))  # [batch, heads, seq + 2, dim], pre-scaled
    key_t = heads("key", [0, 2, 3, 1])  # [batch, heads, dim, seq + 2]
    value = heads("value", [0, 2, 1, 3])  # [batch, heads, seq + 2, dim]
    scores = g.node("MatMul", [query, key_t], f"{n}_scores")  # [batch, heads, seq + 2 (queries), seq + 2 (keys)]
    probs = g.node("Softmax", [g.node("Add", [scores, mask], f"{n}_masked_scores")], f"{n}_probs", axis=-1)
    context = g.node("MatMul", [probs, value], f"{n}_context")  # [batch, heads, seq + 2, dim]
    merged = g.node("Transpose", [context], f"{n}_context_t", perm=[0, 2, 1, 3])  # [batch, seq + 2, heads, dim]
    return g.node("Reshape", [merged, "shape_merged"], f"{n}_context_merged")


def _gelu(g: _Graph, x: str, prefix: str) -> str:
    """Exact GELU, 0.5 * x * (1 + erf(x / sqrt(2))): the pattern onnxruntime fuses into one Gelu op."""
    erf = g.node("Erf", [g.node("Div", [x, "sqrt2"], f"{prefix}_gelu_scaled")], f"{prefix}_gelu_erf")
    gated = g.node("Mul", [x, g.node("Add", [erf, "float_one"], f"{prefix}_gelu_plus1")], f"{prefix}_gelu_gated")
    return g.node("Mul", [gated, "float_half"], f"{prefix}_gelu")


def _pooling(g: _Graph, args: EncoderArgs, x: str, real: str) -> str:
    """The features [batch, hidden] the head reads: the mean over the real positions or the [CLS] state."""
    from onnx import TensorProto

    if args.pooling == "cls":
        return g.node("Gather", [x, "zero"], "pooled", axis=1)  # [batch, hidden]
    real_f = g.node("Cast", [real], "real_f", to=TensorProto.FLOAT)  # [batch, seq + 2]
    weights = g.node("Unsqueeze", [real_f, _int64(g, "axes2", [2])], "pool_weights")  # [batch, seq + 2, 1]
    total = g.node(
        "ReduceSum", [g.node("Mul", [x, weights], "pool_masked"), "axes1"], "pool_sum", keepdims=0
    )  # [batch, hidden]
    count = g.node("ReduceSum", [weights, "axes1"], "pool_count", keepdims=0)  # [batch, 1]: length + 2
    return g.node("Div", [total, count], "pooled")
