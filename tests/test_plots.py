import shutil

import pytest
from typer.testing import CliRunner

from llmcls.cli import app
from llmcls.errors import RunError
from llmcls.plots import plot_run

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_writes_the_plots(trained_sst2):
    for name in ("curves.png", "confusion_matrix.png"):
        data = (trained_sst2.run_dir / "plots" / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000, name


def test_plot_command_on_a_run_in_progress(trained_sst2, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(trained_sst2.run_dir, run_dir)
    shutil.rmtree(run_dir / "plots")
    (run_dir / "results.json").unlink()  # training has not finished: curves only
    result = CliRunner().invoke(app, ["plot", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.split() == [str(run_dir / "plots" / "curves.png")]
    assert (run_dir / "plots" / "curves.png").read_bytes().startswith(PNG)


def test_nothing_to_plot(tmp_path):
    with pytest.raises(RunError, match="no metrics.jsonl"):
        plot_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(RunError, match="no finished epoch yet"):
        plot_run(tmp_path)
