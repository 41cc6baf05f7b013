"""A model adapter of a user's own, as docs/models.md describes one: a small convolutional net that is not a
transformers model, saved as a weights file and a JSON config, named in config as
``tests/adapters/tiny_adapter.py:TinyAdapter``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from samesky.embed.families import LoadedModel, is_control, random_weights


class TinyNet(torch.nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.blocks = torch.nn.ModuleList([torch.nn.Conv2d(3, channels, 3, stride=2),
                                           torch.nn.Conv2d(channels, channels, 3, stride=2)])

    def forward(self, x):
        outs = []
        for block in self.blocks:
            x = torch.relu(block(x))
            outs.append(x.mean(dim=(2, 3)))
        return outs


class TinyAdapter(LoadedModel):
    family = "tiny"

    def prepare_images(self, rgb):  # (B, H, W, 3) uint8 -> (B, 3, H, W) in [0, 1]
        return {"x": torch.as_tensor(rgb).permute(0, 3, 1, 2).float() / 255.0}

    def embed(self, inputs):
        return self.model(inputs["x"])[-1]

    def layer_names(self):
        return ["block_01", "final"]

    def embed_layers(self, inputs):
        return self.model(inputs["x"])

    @classmethod
    def write_mini(cls, spec, folder):
        net = TinyNet(spec.mini["channels"])
        torch.save(net.state_dict(), Path(folder) / "weights.pt")
        (Path(folder) / "tiny.json").write_text(json.dumps({"channels": spec.mini["channels"]}))
        return "tiny.json"

    @classmethod
    def from_folder(cls, folder, manifest, spec, device=None, **_):
        net = TinyNet(json.loads((Path(folder) / "tiny.json").read_text())["channels"])
        if is_control(manifest):
            with random_weights(manifest):
                return cls(TinyNet(net.channels))
        net.load_state_dict(torch.load(Path(folder) / "weights.pt", weights_only=True))
        return cls(net)
