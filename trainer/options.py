"""The knobs of one training run, with every default written once.

What a user sets (`train.epochs`, `train.batch_size`, `train.lr`,
`train.max_pairs`) defaults to `TrainSettings`, the same place the daemon's
scheduled runs read; the rest are the trainer's own choices, defined here
and read by the command line's help, the run and the fine-tuning loop.
This module imports nothing heavy, so the command line can show its help
without loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kenning.server.settings import TrainSettings

_SETTINGS = TrainSettings()

DEFAULT_SEED = 42
DEFAULT_HELDOUT_FRACTION = 0.2
DEFAULT_MAX_COMMITS = 300
"""Commits read for commit-message -> hunk pairs (newest first)."""


@dataclass(frozen=True)
class TrainOptions:
    parts: str = "both"
    """What a run trains: `model` (full fine-tune), `adapter` (query adapter) or `both`
    (the fine-tune, then an adapter for whichever model serves after it)."""
    epochs: int = _SETTINGS.epochs
    batch_size: int = _SETTINGS.batch_size
    lr: float = _SETTINGS.lr
    device: str = "auto"
    """`auto` takes the `device` setting."""
    no_gate: bool = False
    """Promote whatever the held-out result; recorded in the card as `gate.bypassed`."""
    max_pairs: int = _SETTINGS.max_pairs
    """Training pairs kept (a seeded sample): about 60 optimizer steps per epoch at
    batch 32. A step of batch 32 at 128 tokens took ~25 s on one busy CPU core."""
    max_eval_pairs: int = 500
    min_pairs: int = 50
    """Fewer mined pairs than this: no training, one line saying so."""
    min_heldout: int = 10
    seed: int = DEFAULT_SEED
    max_seq_length: int = 128
    """Tokens per text while training; attention cost grows with its square."""
    min_steps: int = 60
    """Small data is repeated until the run has at least this many optimizer steps. With
    20, the benchmark's packages (a few hundred pairs each) got 20 steps, and more lifted
    every one whose pairs gave more (bench/RESULTS.md, "The fine-tune's budget"): about
    five minutes of steps on a 2-core CPU, seconds on a GPU."""
    warmup_ratio: float = 0.05
    """Fraction of the optimizer steps spent ramping the learning rate up from 0."""
    heldout_fraction: float = DEFAULT_HELDOUT_FRACTION
    max_signature_share: float = 0.5
    """At most this share of the training pairs are signature -> body pairs: a workspace
    has several times more signatures than descriptions, and they are the weaker signal."""
    max_commits: int = DEFAULT_MAX_COMMITS
    resume: bool = True
    save_steps: int = 25
    """Save resumable state every this many optimizer steps (a step is 10-60 s on a CPU)."""

    @classmethod
    def from_settings(cls, train: TrainSettings, **changes: Any) -> TrainOptions:
        """The options of a run for a workspace whose `train.*` settings are `train`;
        `changes` (command-line flags) win over them."""
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {
            f.name: getattr(train, f.name)
            for f in dataclasses.fields(TrainSettings)
            if f.name in names
        }
        chosen["parts"] = "both" if train.adapter else "model"
        return cls(**{**chosen, **changes})
