"""Inference: forward backends (`forward`, `backends`, `torch_forward`, `onnx_forward`), prediction (`predict`),
evaluation
on a labelled file (`evaluate`), long texts in windows (`chunking`), and scores (`scoring`, `metrics`).

Importing this package imports no torch: the ONNX backend predicts without it."""
