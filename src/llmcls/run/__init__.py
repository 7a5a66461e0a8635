"""The run directory: every file name and the format version (`layout`), claiming and locking a directory
(`claim`), finding a run's file without following a link or leaving the run (`paths`), what its files must agree
on (`checks`), reading and writing its files (`files`), and training checkpoints (`checkpoint`)."""
