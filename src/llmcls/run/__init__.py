"""The run directory: every file name and the format version (`layout`), claiming and locking a directory
(`claim`), reading and writing its files (`files`), and training checkpoints (`checkpoint`)."""
