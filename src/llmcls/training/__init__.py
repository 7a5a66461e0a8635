"""Training: the loop (`loop.train`), what it is built from (`setup`), one optimizer step (`step`), optimizers and
schedules (`optim`), and data-parallel processes (`distributed`)."""
