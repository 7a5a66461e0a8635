"""The encoder classifier's hand-built ONNX graph (llmcls.export.encoder_graph): onnxruntime computes PyTorch's
logits for texts of any length in a batch, whatever ids follow a text's end, for each pooling and head size; and
its dynamic int8 quantization (as `llmcls export --quantize int8` does it) runs and stays close."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llmcls.encoder.bert import EncoderArgs, EncoderClassifier
from llmcls.export.encoder_graph import build_encoder_onnx
from llmcls.export.graph import INPUTS, OPSET, OUTPUT

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")

PAD, CLS, SEP = 0, 2, 3
LENGTHS = [1, 5, 12, 3, 12, 7, 2]  # one batch: every text shorter than the longest is followed by padding
# texts followed by non-pad ids that the graph must ignore: [CLS], [SEP], others, and ids outside the vocabulary
JUNK_AFTER = {1, 3, 6}
JUNK_IDS = [CLS, SEP, 5, 59, -1, 10**6]


def small_args(num_outputs: int, pooling: str) -> EncoderArgs:
    return EncoderArgs(
        vocab_size=60,
        hidden_size=16,
        num_layers=2,
        num_heads=2,
        intermediate_size=32,
        max_positions=40,
        type_vocab_size=2,
        num_outputs=num_outputs,
        pad_index=PAD,
        cls_index=CLS,
        sep_index=SEP,
        layer_norm_eps=1e-12,
        pooling=pooling,
    )


def random_model(args: EncoderArgs, seed: int) -> EncoderClassifier:
    """An EncoderClassifier in eval mode whose every weight (LayerNorms and head included) is random and matters."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    model = EncoderClassifier(args).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            else:
                p.uniform_(-0.5, 0.5)
    return model


def session(model_proto: onnx.ModelProto | str) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    source = model_proto if isinstance(model_proto, str) else model_proto.SerializeToString()
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def make_batch(lengths: list[int], junk_after: set[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Content ids (random, specials included) padded to the longest; texts in `junk_after` get random ids in
    place of the padding."""
    rng = np.random.default_rng(seed)
    seq = max(lengths)
    token_ids = np.full((len(lengths), seq), PAD, dtype=np.int64)
    for row, length in enumerate(lengths):
        token_ids[row, :length] = rng.integers(1, 60, size=length)
        if row in junk_after:
            token_ids[row, length:] = rng.choice(JUNK_IDS, size=seq - length)
    return token_ids, np.array(lengths, dtype=np.int64)


def torch_logits(model: EncoderClassifier, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(token_ids), torch.from_numpy(lengths)).numpy()


def onnx_logits(sess: onnxruntime.InferenceSession, token_ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return sess.run([OUTPUT], {INPUTS[0]: token_ids, INPUTS[1]: lengths})[0]


def weights_of(model: EncoderClassifier) -> dict[str, np.ndarray]:
    return {name: t.detach().numpy() for name, t in model.state_dict().items()}


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("num_outputs", [1, 3])
def test_onnx_logits_equal_pytorch(pooling, num_outputs):
    args = small_args(num_outputs, pooling)
    model = random_model(args, seed=num_outputs)
    proto = build_encoder_onnx(args, weights_of(model))
    assert proto.opset_import[0].version == OPSET
    sess = session(proto)
    batches = [
        make_batch(LENGTHS, JUNK_AFTER, seed=1),
        make_batch([1], set(), seed=2),  # batch size 1, seq length 1
        make_batch([1, 1, 1], set(), seed=3),  # seq length 1
        make_batch([4], set(), seed=4),  # batch size 1
        make_batch([args.max_positions - 2, 9], {1}, seed=5),
    ]  # the longest text the positions allow
    for token_ids, lengths in batches:
        expected = torch_logits(model, token_ids, lengths)
        got = onnx_logits(sess, token_ids, lengths)
        assert got.shape == (len(lengths), num_outputs) and got.dtype == np.float32
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # the texts followed by junk get exactly the logits they get when followed by padding
    token_ids, lengths = make_batch(LENGTHS, JUNK_AFTER, seed=1)
    padded = np.where(np.arange(token_ids.shape[1])[None, :] < lengths[:, None], token_ids, PAD)
    assert (padded != token_ids).any()
    np.testing.assert_array_equal(onnx_logits(sess, token_ids, lengths), onnx_logits(sess, padded, lengths))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_every_linear_layer_is_a_matmul_with_a_weight_initializer(pooling):
    """What int8 dynamic quantization of MatMul needs: the 6 projections of each layer and the head are MatMuls
    whose second input is a stored weight; the mask is made once, not per layer; every initializer is used."""
    args = small_args(3, pooling)
    proto = build_encoder_onnx(args, weights_of(random_model(args, seed=0)))
    stored = {init.name for init in proto.graph.initializer}
    matmuls = [node for node in proto.graph.node if node.op_type == "MatMul"]
    assert sum(node.input[1] in stored for node in matmuls) == 6 * args.num_layers + 1
    assert len(matmuls) == 8 * args.num_layers + 1  # plus the scores and the context of each layer
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("LayerNormalization") == 2 * args.num_layers + 1
    assert ops.count("Erf") == args.num_layers and ops.count("Softmax") == args.num_layers
    assert ops.count("Where") == 4  # [CLS], [SEP], padding, and the additive mask: once for all layers
    assert len(stored) == len(proto.graph.initializer)  # no name stored twice
    used = {name for node in proto.graph.node for name in node.input}
    assert stored <= used  # nor any left unused


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_int8_dynamic_quantization_stays_close(tmp_path, seed):
    """llmcls's int8 quantization (llmcls.export.quantize, as `llmcls export --quantize int8` runs it) applies to
    the graph: every weight MatMul becomes a MatMulInteger and the logits stay close, on this CPU whatever it is.
    On an AVX2-only CPU 8-bit weights saturated onnxruntime's 16-bit sums (errors up to 43% of the largest logit
    for these seeds); the 7-bit per-channel weights stay within a few percent."""
    from llmcls.export.quantize import quantize_int8

    args = small_args(3, "mean")
    model = random_model(args, seed=seed)
    float_path, prepared, quantized = tmp_path / "float.onnx", tmp_path / "prepared.onnx", tmp_path / "int8.onnx"
    float_path.write_bytes(build_encoder_onnx(args, weights_of(model)).SerializeToString())
    ops = quantize_int8(float_path, prepared=prepared, quantized=quantized)
    assert ops["MatMulInteger"] == 6 * args.num_layers + 1
    assert ops["MatMul"] == 2 * args.num_layers  # attention's scores and context stay float
    # 7-bit weights with a scale per output column, whatever this CPU is (the file may be served on another)
    proto = onnx.load(str(quantized))
    stored = {init.name: onnx.numpy_helper.to_array(init) for init in proto.graph.initializer}
    for node in (n for n in proto.graph.node if n.op_type == "MatMulInteger"):
        weight, zero_point = stored[node.input[1]], stored[node.input[3]]
        assert weight.dtype == np.int8 and np.abs(weight).max() <= 64
        assert zero_point.shape == (weight.shape[1],)

    token_ids, lengths = make_batch(LENGTHS, JUNK_AFTER, seed=1)
    expected = onnx_logits(session(str(float_path)), token_ids, lengths)
    got = onnx_logits(session(str(quantized)), token_ids, lengths)
    assert got.shape == expected.shape and np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=0.08 * np.abs(expected).max())
    assert np.corrcoef(got.ravel(), expected.ravel())[0, 1] > 0.995
