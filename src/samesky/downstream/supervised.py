"""A small CNN trained from scratch on the cutouts: seed 003's supervised baseline (its Figure 3 draws a
ResNet-50 trained from scratch beside the frozen backbones), and the check that the labels can be learnt
from the pixels at all.

Four 3x3 convolutions (8, 16, 32, 32 channels, ReLU, 2x2 max-pooling after the first three), global
average pooling and a linear layer (15k parameters; twice the channels cost twice the time for +0.02
macro F1 on the mini pair); Adam (1e-3), batches of 32, class-weighted cross-entropy (weights inversely
proportional to the class counts of the labelled subset), random 90-degree rotations and flips (a
galaxy's class does not depend on its orientation); ``epochs`` passes, but at least ``MIN_STEPS``
updates. Trained on the same nested label subsets and scored on the same test set as the frozen heads.
Small on purpose: the training sets hold hundreds of images, not the 80k of the real one.
"""

from __future__ import annotations

import numpy as np

MIN_STEPS = 200  # updates at the least: 30 epochs of the 10% subset (two batches) would be 60, too few to learn
PARAMS_M = 0.015  # the network's parameters (15.5k with six classes), in millions as the model table counts them


def _network(n_classes: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(32, n_classes),
    )


def fit_predict_cnn(images_train: np.ndarray, y_train: np.ndarray, images_test: np.ndarray, seed: int,
                    epochs: int, batch: int = 32, lr: float = 1e-3, device: str = "cpu") -> np.ndarray:
    """Train the CNN on (N, H, W, 3) uint8 images and their classes; predict the test images' classes."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    classes = sorted(set(y_train))
    target = torch.as_tensor([classes.index(c) for c in y_train], device=device)
    counts = np.bincount(target.cpu().numpy(), minlength=len(classes))
    weight = torch.as_tensor(len(y_train) / (len(classes) * counts), dtype=torch.float32, device=device)

    def tensor(images):
        return torch.as_tensor(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255).to(device)

    x = tensor(images_train)
    net = _network(len(classes)).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    batches = -(-len(x) // batch)
    for _ in range(max(epochs, -(-MIN_STEPS // batches))):  # a small subset still gets MIN_STEPS updates
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = torch.as_tensor(order[start:start + batch], device=device)
            xb = torch.rot90(x[idx], int(rng.integers(4)), (2, 3))
            if rng.random() < 0.5:
                xb = xb.flip(3)
            opt.zero_grad()
            nn.functional.cross_entropy(net(xb), target[idx], weight=weight).backward()
            opt.step()
    net.eval()
    with torch.inference_mode():
        pred = torch.cat([net(tensor(images_test[i:i + 256])).argmax(1) for i in range(0, len(images_test), 256)])
    return np.asarray([classes[i] for i in pred.cpu().numpy()], dtype=object)
