"""After the last epoch: the best model's calibration, multi-label thresholds and scores, results.json, the plots
and the ONNX export, by process 0 alone (which holds the weights)."""

from __future__ import annotations

import numpy as np

from llmcls.events import Info
from llmcls.inference.scoring import probabilities
from llmcls.inference.torch_forward import predict_logits
from llmcls.records import Report, Results
from llmcls.run.artifacts import load_best_weights
from llmcls.run.files import write_temperature, write_thresholds
from llmcls.run.results import write_results
from llmcls.training.evaluation import decision_thresholds, evaluate_split, fit_calibration, report_of_logits
from llmcls.training.state import TrainingParts, TrainState


def finish_run(parts: TrainingParts, state: TrainState) -> tuple[Report, Report | None]:
    """The best model's calibration, thresholds, reports, results.json, the plots and the ONNX export (by process
    0 alone, which holds the weights)."""
    cfg, data, model, device = parts.config.train, parts.data, parts.step.model, parts.step.device
    model.load_state_dict(load_best_weights(parts.run_dir))
    valid_logits = predict_logits(
        model, data.valid.texts, batch_size=cfg.eval_batch_size, device=device, batch_tokens=cfg.eval_batch_tokens
    )
    temperature, ece = _calibrate(parts, valid_logits.numpy())  # before the thresholds, which are tuned on its output
    thresholds = None
    if parts.config.data.multi_label:
        valid_probs = probabilities(valid_logits.numpy(), True, temperature)
        thresholds, method = decision_thresholds(cfg, valid_probs, data.valid.targets)
        write_thresholds(parts.run_dir, data.labels.labels, thresholds=thresholds, method=method)

    valid = report_of_logits(
        valid_logits, data.valid, labels=data.labels.labels, thresholds=thresholds, temperature=temperature
    )
    test = None
    if data.test is not None:
        test = evaluate_split(
            model,
            data.test,
            labels=data.labels.labels,
            batch_size=cfg.eval_batch_size,
            device=device,
            thresholds=thresholds,
            batch_tokens=cfg.eval_batch_tokens,
            temperature=temperature,
        )
    results: Results = {
        "best_epoch": state.best_epoch,
        "select_metric": cfg.select_metric,
        "epochs_run": len(state.history),
        "train_seconds": sum(r["seconds"] for r in state.history),
        "precision": parts.step.precision,
        "temperature": temperature,
        "valid_ece_before": ece["valid_ece_before"],
        "valid_ece_after": ece["valid_ece_after"],
        "vector_coverage": state.vector_coverage,
        "valid": valid,
        "test": test,
    }
    write_results(parts.run_dir, results)
    if cfg.plots:
        from llmcls.plots import plot_run

        plot_run(parts.run_dir)
    if cfg.export_onnx:  # so that predict, eval and serve start without torch (llmcls.inference.onnx_forward)
        from llmcls.export.write import export_after_training

        export_after_training(parts.run_dir, parts.on_event)
    return valid, test


def _calibrate(parts: TrainingParts, valid_logits: np.ndarray) -> tuple[float | None, dict]:
    """Fit `train.calibrate`'s temperature on the validation logits [n, num_outputs], save it with the run, and
    say what it did to the validation ECE; returns `fit_calibration`'s answer."""
    temperature, ece = fit_calibration(parts.config.train, valid_logits, parts.data.valid.targets)
    before, after = ece["valid_ece_before"], ece["valid_ece_after"]
    if temperature is None:
        parts.on_event(Info(f"calibration: none (train.calibrate), validation ECE {before:.4f}"))
        return None, ece
    write_temperature(parts.run_dir, temperature, ece)
    parts.on_event(Info(f"calibration: temperature T={temperature:.3f}, validation ECE {before:.4f} -> {after:.4f}"))
    return temperature, ece
