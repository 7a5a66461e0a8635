"""Process-wide torch settings a run starts with (a unit test: no epoch of training is needed to check them)."""

import os

import torch

from llmcls.config import TrainConfig
from llmcls.training.setup import configure_torch
from llmcls.training.world import World


def test_deterministic_mode_sets_the_torch_flags(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    threads = torch.get_num_threads()
    try:
        configure_torch(TrainConfig(deterministic=True, threads=1))
        assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
        assert not torch.backends.cudnn.benchmark and os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.get_num_threads() == 1
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.set_num_threads(threads)


def test_processes_of_one_machine_share_its_cores():
    threads = torch.get_num_threads()
    try:
        configure_torch(TrainConfig(), World(rank=1, size=2, local_rank=1, local_size=2))
        assert torch.get_num_threads() == max(1, len(os.sched_getaffinity(0)) // 2)
        assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
