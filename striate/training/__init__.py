"""Training and evaluation loops, callbacks, metrics, checkpoints.

    history = st.training.fit(model, train_loader, val_loader, epochs=10, optimizer=opt)
    result = st.training.evaluate(model, test_loader)       # loss, accuracy, confusion_matrix, ...
    pred = st.training.predict(model, images, class_names)  # probabilities, predicted names
    found = st.training.lr_find(model, train_loader)          # learning-rate range test, on a copy
    study = st.training.tune(objective, st.training.search_space(["lr=1e-3..0.1:log"]), n_trials=20)  # Optuna
    result = st.training.train_run(dict(dataset="digits", epochs=5), out="runs/a")   # what `striate train` does
    result = st.training.finetune_run("runs/a/weights.npz", "digits", "runs/b", classes=[0, 1])  # `striate finetune`
"""
from . import metrics, tasks
from .callbacks import Callback, CSVLogger, EarlyStopping, History, ModelCheckpoint
from .checkpoint import (Checkpoint, CheckpointError, load_checkpoint, load_weights, save_checkpoint,
                         save_weights)
from .loop import Prediction, Run, evaluate, fit, predict
from .model_file import load_model
from .run_dir import RUN_FILES, RunDir, RunDirBusy, RunDirError, run_data
from .transfer import finetune, finetune_run
from .lr_find import LRFindResult, lr_find
from .gradient_norms import GradientNorms
from .tensorboard import TensorBoard
from .live import LiveRun
from .config_file import read_config_file, write_config_file
from .run import RunResult, TrainingFailed, load_resume, train_run
from .search import (SEARCHABLE, SearchParam, TrialFailed, TrialPruning, param_importances, parse_search,
                     search_space, trial_rows, tune)

__all__ = ["fit", "evaluate", "predict", "Prediction", "Run", "Callback", "History", "EarlyStopping",
           "ModelCheckpoint", "CSVLogger", "save_checkpoint", "load_checkpoint", "save_weights", "load_weights",
           "Checkpoint", "CheckpointError", "metrics",
           "RunDir", "RunDirError", "RunDirBusy", "RUN_FILES", "run_data", "load_model", "finetune",
           "lr_find", "LRFindResult", "TensorBoard", "GradientNorms", "LiveRun",
           "tune", "parse_search", "search_space", "SearchParam", "SEARCHABLE", "TrialPruning", "TrialFailed",
           "trial_rows", "param_importances", "tasks",
           "train_run", "finetune_run", "RunResult", "TrainingFailed", "load_resume", "read_config_file", "write_config_file"]
