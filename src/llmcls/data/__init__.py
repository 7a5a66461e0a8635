"""Data: from labelled files to encoded splits (readers, tokenizer and its cache, vocabulary and label map,
length-bucketed batches, and `prepare`, the one way a run reads and encodes its files). Imports nothing above
`llmcls.embeddings`."""
