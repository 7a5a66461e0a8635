"""The pretrained-encoder model family: a BERT-family encoder fine-tuned with a classification head
(`bert.py`). Its files and tokenizer are read without torch by `llmcls.data.wordpiece`."""
