"""Every name llmcls writes in a run directory, and the format versions: the one table of the run's layout.

Layout of `runs/<name>/`:
    config.yaml        the resolved config (every default filled in)
    meta.json          format version, versions of llmcls/torch, the network's constructor arguments
    vocab.json         the token table (a BiLSTM run)
    tokenizer.json     the pretrained encoder's tokenizer (an encoder run, instead of vocab.json)
    labels.json        the label table (class id = position)
    model.safetensors  weights of the best epoch
    metrics.jsonl      one line per epoch (also as metrics.csv)
    checkpoint-last.pt the training state after the last finished epoch (or step), to resume from
    plots/             curves.png (loss and validation metrics per epoch), confusion_matrix.png
    results.json       the summary: best epoch, validation and test metrics, timings
    thresholds.json    multi-label runs: the probability each class needs to be predicted
    temperature.json   with train.calibrate: temperature: the T that predictions divide the logits by
    export/            `llmcls export`'s ONNX models and their manifest (llmcls.inference.onnx_forward)
    distill/           a distilled run's transfer set and its teacher's logits (computed once, reused on resume)
    tensorboard/       with train.tensorboard: TensorBoard's event files

`--overwrite` removes nothing that is not in RUN_LAYOUT (llmcls.run.claim), by its exact name.
"""

from __future__ import annotations

FORMAT_VERSION = 1  # of meta.json and the weights: what `llmcls.run.files.load_run_info` reads
MANIFEST_VERSION = 2  # of export/manifest.json (2: the digest of each model file, and the network's arguments)

CONFIG, META, VOCAB, LABELS, WEIGHTS = "config.yaml", "meta.json", "vocab.json", "labels.json", "model.safetensors"
TOKENIZER = "tokenizer.json"
RUN_FILES = (CONFIG, META, VOCAB, LABELS, WEIGHTS)  # a complete BiLSTM run
# meta.json's model_family -> the file that turns texts into the model's token ids
LSTM_FAMILY, ENCODER_FAMILY = "lstm", "encoder"
FAMILY_FILES = {LSTM_FAMILY: VOCAB, ENCODER_FAMILY: TOKENIZER}
DISTILL_DIR, TRANSFER = "distill", "transfer.npz"
METRICS_JSONL, METRICS_CSV = "metrics.jsonl", "metrics.csv"
RESULTS, THRESHOLDS, TEMPERATURE = "results.json", "thresholds.json", "temperature.json"
CHECKPOINT = "checkpoint-last.pt"
LOCK = ".lock"
PLOTS_DIR = "plots"
CURVES_PLOT, CONFUSION_PLOT = "curves.png", "confusion_matrix.png"
EXPORT_DIR = "export"
EXPORT_MANIFEST = "manifest.json"
EXPORT_MODELS = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}  # predict backend -> file
TENSORBOARD_DIR = "tensorboard"
# llmcls.export.write's scratch folder for int8 quantization (tempfile.TemporaryDirectory: the prefix and 8 of
# [a-z0-9_]), left behind only when the export was killed, and the two files it writes there.
QUANTIZE_PREFIX = ".quantize-"
PREPARED_ONNX, QUANTIZED_ONNX = "prepared.onnx", "quantized.onnx"
# What llmcls writes: glob pattern -> None for a file, or for a folder what it writes there. The temporary file of
# an atomic write of a file named here (llmcls.fileio.temporary_of) is llmcls's too; no other name is.
Layout = dict[str, "Layout | None"]
RUN_LAYOUT: Layout = {
    **dict.fromkeys(
        RUN_FILES + (TOKENIZER, METRICS_JSONL, METRICS_CSV, CHECKPOINT, RESULTS, THRESHOLDS, TEMPERATURE, LOCK)
    ),
    DISTILL_DIR: dict.fromkeys((TRANSFER,)),
    PLOTS_DIR: dict.fromkeys((CURVES_PLOT, CONFUSION_PLOT)),
    EXPORT_DIR: {
        **dict.fromkeys((EXPORT_MANIFEST, *EXPORT_MODELS.values())),
        QUANTIZE_PREFIX + "[a-z0-9_]" * 8: dict.fromkeys((PREPARED_ONNX, QUANTIZED_ONNX)),
    },
    TENSORBOARD_DIR: {"events.out.tfevents.*": None},
}
# What was computed from the best weights, and would be stale beside weights trained further.
FROM_WEIGHTS = (RESULTS, THRESHOLDS, TEMPERATURE, f"{PLOTS_DIR}/{CONFUSION_PLOT}", EXPORT_DIR)
