"""torch.compile without graph breaks, and ONNX export run in onnxruntime."""

import pytest
import torch

from devices import needs_values, only_on, without_default_device
from layer_cases import CONFIGS, IDS, awake, build


@needs_values
@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_compile_fullgraph_equals_eager(kind, options):
    layer = awake(build(kind, options, dtype=torch.float32)).eval()
    x = torch.randn(2, 8, 6, 5)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True)
    with without_default_device():
        torch.testing.assert_close(compiled(x), layer(x), rtol=1e-5, atol=1e-5)


@only_on("cpu", reason="onnxruntime runs the exported graph on the CPU, and the export is checked there")
@pytest.mark.parametrize(("kind", "options"), CONFIGS, ids=IDS)
def test_onnx_export_runs_in_onnxruntime(kind, options, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    layer = awake(build(kind, options, dtype=torch.float32)).eval()
    x = torch.randn(2, 8, 6, 5)
    path = tmp_path / "layer.onnx"
    torch.onnx.export(layer, (x,), dynamo=True, opset_version=18, verbose=False).save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), layer(x).detach(), rtol=1e-4, atol=1e-4)
