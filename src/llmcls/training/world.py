"""Which process this is among the training processes (torchrun's RANK, WORLD_SIZE, LOCAL_RANK and
LOCAL_WORLD_SIZE): the one reader of them. Imports no torch, so that the CLI can name a process in its errors."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class World:
    """This process's place among the training processes; one process unless torchrun started several."""

    rank: int = 0  # 0 .. size - 1, over all machines
    size: int = 1
    local_rank: int = 0  # on this machine
    local_size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes the run directory and reports progress."""
        return self.rank == 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        """The place torchrun gives this process in RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE."""
        env = os.environ if env is None else env
        if "WORLD_SIZE" not in env:
            return cls()
        return cls(
            rank=int(env["RANK"]),
            size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            local_size=int(env.get("LOCAL_WORLD_SIZE", 1)),
        )


SINGLE = World()
