"""`tam data bench` writes its JSON and Markdown result files (tiny settings; the real run is committed)."""

import json

from tam_data_builders import imagefolder_files, write

from tam import cli


def test_bench_writes_json_and_markdown(tmp_path, monkeypatch, capsys):
    import torch

    from tam.bench import load

    threads = torch.get_num_threads()
    monkeypatch.setattr(cli, "COMMANDS", {"data": cli.COMMANDS["data"]})
    monkeypatch.setattr(load, "load_average", lambda: 3.0)  # another job holds both cores
    monkeypatch.setattr(load, "cores", lambda: 2)
    source = write(imagefolder_files(train=40, test=10, size=(32, 32))[0], tmp_path / "s.tar.gz", "tar.gz")
    code = cli.main(["data", "bench", "--source", str(source), "--out", str(tmp_path / "r"), "--passes", "1",
                     "--batch-size", "16", "--threads", "1", "--note", "a smoke test"])  # 1 thread: robust on a busy shared CPU
    assert code == 0 and torch.get_num_threads() == threads  # --threads is undone afterwards
    result = json.loads((tmp_path / "r" / "loader.json").read_text())
    assert result["machine"]["torch"] and result["date"] and result["prepare_s"] >= 0
    assert result["train_loader"]["images_per_s_median"] > 0 and result["train_loader"]["output_shape"] == [16, 3, 32, 32]
    assert result["preresnet20_step"]["step_ms_median"] > 0 and result["machine"]["torch_threads"] == 1
    markdown = (tmp_path / "r" / "loader.md").read_text()
    assert "# Data loader throughput" in markdown and "% of a step" in markdown and "- Note: a smoke test" in markdown
    assert result["command"] == f"tam data bench --source {source} --batch-size 16 --device cpu --passes 1 --threads 1"
    # the shared timing policy: the choice printed and recorded, the figures marked as taken under load
    line = "tam data bench: 1-min load average 3.0 on 2 cores (as --threads asks): timing with 1 thread, under load"
    assert result["under_load"] and result["threads_chosen"].startswith(line)
    assert f"- Threads: {line}" in markdown and "| images/s (median) *under load* |" in markdown
    printed = capsys.readouterr()
    assert "wrote" in printed.out and line in printed.err
