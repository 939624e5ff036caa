"""Training and evaluation loops, callbacks, metrics, checkpoints.

    history = st.training.fit(model, train_loader, val_loader, epochs=10, optimizer=opt)
    result = st.training.evaluate(model, test_loader)       # loss, accuracy, confusion_matrix, ...
    pred = st.training.predict(model, images, class_names)  # probabilities, predicted names
"""
from . import metrics, tasks
from .callbacks import Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint
from .checkpoint import (Checkpoint, CheckpointError, load_checkpoint, load_weights, save_checkpoint,
                         save_weights)
from .loop import Prediction, Run, evaluate, fit, predict

__all__ = ["fit", "evaluate", "predict", "Prediction", "Run", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "CSVLogger", "save_checkpoint", "load_checkpoint", "save_weights", "load_weights",
           "Checkpoint", "CheckpointError", "metrics", "tasks"]
