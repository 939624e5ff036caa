"""Optimisers and learning-rate schedules.

    opt = st.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    sched = st.optim.CosineAnnealingLR(opt, t_max=10)
"""
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .build import build_optimizer, build_schedule
from .schedules import (ConstantLR, ContinuedLR, CosineAnnealingLR, ExponentialLR, LinearWarmup, LRSchedule,
                        MultiStepLR, ReduceLROnPlateau, StepLR)
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "LRSchedule", "StepLR", "MultiStepLR", "ExponentialLR",
           "CosineAnnealingLR", "ConstantLR", "LinearWarmup", "ReduceLROnPlateau", "ContinuedLR",
           "build_optimizer", "build_schedule"]
