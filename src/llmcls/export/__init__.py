"""Export: a run's model as an ONNX graph (`graph`), written into RUN/export/ and measured against PyTorch
(`write`). Optional (`pip install 'llmcls[onnx]'`); the exported models are run by
`llmcls.inference.onnx_forward`."""
