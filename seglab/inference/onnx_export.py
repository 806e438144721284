"""ONNX export of semantic models with dynamic batch, height and width."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from seglab.engine.evaluate import predict_logits
from seglab.errors import ConfigError


class LogitsOnly(nn.Module):
    """Wraps a semantic model so the exported graph maps images [N, 3, H, W] to logits [N, C, H, W].

    With ``input_size`` (a checkpoint trained at reduced resolution) the graph resizes the images to it
    and the logits back, exactly as ``seglab predict`` and ``seglab eval`` do (``predict_logits``).
    """

    def __init__(self, model: nn.Module, input_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.model = model
        self.input_size = tuple(input_size) if input_size else None

    def forward(self, images: Tensor) -> Tensor:
        return predict_logits(self.model, images, input_size=self.input_size)


def export_onnx(
    model: nn.Module, path: str | Path, *, sample_size: tuple[int, int] = (67, 91), opset: int = 18,
    input_size: tuple[int, int] | None = None, metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` (eval mode) to ONNX with dynamic N, H, W; inputs are float images in [0, 1].

    Args:
        sample_size: (H, W) of the example input traced; keep it off the stride multiple.
        input_size: the (H, W) the checkpoint was trained at (config.json's ``input_size``): the graph
            resizes to it and back, as ``seglab predict`` does, so both give the same labels.
        metadata: recorded in the file's metadata_props (``seglab.*`` keys: model, input size, ...).

    Raises:
        ConfigError: the model is registered as not exportable, or the exporter fails.
    """
    spec = getattr(model, "spec", None)
    if spec is not None and not spec.exportable:
        reason = spec.export_note or "its ModelSpec says exportable=False"
        raise ConfigError(f"{spec.name} cannot be exported to ONNX: {reason}")
    if getattr(model, "exportable", True) is False:  # an instance-level opt-out, e.g. DeepLab v1 with crf=True
        name = spec.name if spec is not None else type(model).__name__
        raise ConfigError(f"this {name} cannot be exported to ONNX (model.exportable is False: it was built with a "
                          "part that runs in PyTorch only, such as crf=True); build it without that option")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    # Batch 2 and a size that is not a multiple of the network's stride: the exporter specialises
    # sizes 0 and 1, and would otherwise assume "no padding needed" for every input.
    images = torch.rand(2, 3, *sample_size)
    auto = torch.export.Dim.AUTO
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                LogitsOnly(model, input_size), (images,), dynamo=True, opset_version=opset,
                input_names=["images"], output_names=["logits"], dynamic_shapes=({0: auto, 2: auto, 3: auto},),
                verbose=False,
            )
        program.save(str(path))
        if metadata:
            _add_metadata(path, metadata)
    except Exception as exc:  # the exporter raises many types; report one clear error
        name = spec.name if spec is not None else type(model).__name__
        raise ConfigError(f"ONNX export of {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    return path


def _add_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the ONNX file's metadata_props (read back with onnx or onnxruntime)."""
    import onnx  # noqa: PLC0415 - installed with the exporter (onnxscript)

    graph = onnx.load(str(path))
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(graph, str(path))
