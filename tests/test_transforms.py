"""The image models' preprocessing in torch (samesky.embed.transforms) against transformers' own processors,
and the background reader that feeds the models: order kept, errors passed on."""

import random
import threading
import time

import numpy as np
import pytest
import torch
from transformers import BitImageProcessor, ConvNextImageProcessor, ViTImageProcessor

from samesky.embed.run import ordered_prefetch
from samesky.embed.transforms import BICUBIC, BILINEAR, ProcessorTransform, pil_resize

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
PROCESSORS = {  # the released checkpoints' settings (the paper sizes) and the mini models'
    "vit-224": lambda: ViTImageProcessor(size={"height": 224, "width": 224}, image_mean=[0.5] * 3, image_std=[0.5] * 3),
    "ijepa-224": lambda: ViTImageProcessor(size={"height": 224, "width": 224}, **IMAGENET),
    "dinov2-224": lambda: BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224},
                                            do_center_crop=True, **IMAGENET),
    "convnextv2-224": lambda: ConvNextImageProcessor(size={"shortest_edge": 224}, crop_pct=0.875, **IMAGENET),
    "convnext-384": lambda: ConvNextImageProcessor(size={"shortest_edge": 384}, **IMAGENET),
    "vit-mini": lambda: ViTImageProcessor(size={"height": 64, "width": 64}, image_mean=[0.5] * 3, image_std=[0.5] * 3),
    "dinov2-mini": lambda: BitImageProcessor(size={"shortest_edge": 73}, crop_size={"height": 64, "width": 64},
                                             do_center_crop=True, **IMAGENET),
    "convnextv2-mini": lambda: ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=224 / 256, **IMAGENET),
}


@pytest.mark.parametrize("name", sorted(PROCESSORS))
@pytest.mark.parametrize("shape", [(160, 160), (96, 96), (48, 48), (32, 32), (300, 300), (120, 160), (161, 97)])
def test_the_torch_transform_gives_the_processors_output_bit_for_bit(name, shape):
    """Tolerance zero: Pillow's fixed-point resampling, transformers' crop, rescale and normalisation, on
    HSC (160), JWST (96), mini (48, 32) cutouts, a shrink (300) and non-square images."""
    processor = PROCESSORS[name]()
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (3, *shape, 3), dtype=np.uint8)
    expected = processor(images=list(rgb), return_tensors="pt")["pixel_values"]
    got = ProcessorTransform(processor)(torch.from_numpy(rgb))
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got, expected)


def test_pil_resize_matches_pillow_on_smooth_and_extreme_images():
    from PIL import Image

    rng = np.random.default_rng(3)
    for _ in range(60):  # random sizes, shrinking and growing each axis: the order of Pillow's passes too
        h_in, w_in, h_out, w_out = (int(v) for v in rng.integers(4, 90, 4))
        img = rng.integers(0, 256, (h_in, w_in), dtype=np.uint8)
        for resample in (BILINEAR, BICUBIC):
            want = np.asarray(Image.fromarray(img).resize((w_out, h_out), resample=resample))
            got = pil_resize(torch.from_numpy(img)[None, None], h_out, w_out, resample)[0, 0].numpy()
            assert np.array_equal(got, want), (h_in, w_in, h_out, w_out, resample)
    for resample in (BILINEAR, BICUBIC):
        ramp = np.tile(np.linspace(0, 255, 37).astype(np.uint8), (23, 1))  # smooth, and 0/255 at the ends
        spikes = np.zeros((23, 37), np.uint8)
        spikes[::4, ::5] = 255  # bicubic overshoot must clip as Pillow does
        for img in (ramp, spikes):
            for size in ((80, 50), (11, 9), (23, 74)):
                want = np.asarray(Image.fromarray(img).resize(size[::-1], resample=resample))
                got = pil_resize(torch.from_numpy(img)[None, None], *size, resample)[0, 0].numpy()
                assert np.array_equal(got, want), (resample, size)


def test_an_unsupported_processor_setting_is_named():
    processor = ViTImageProcessor(size={"height": 64, "width": 64}, resample=1)  # Lanczos
    with pytest.raises(ValueError, match="resample 1: only bilinear"):
        ProcessorTransform(processor)(torch.zeros((1, 32, 32, 3), dtype=torch.uint8))


def test_the_background_reader_keeps_the_row_order():
    """Several workers that finish in random order: the batches still come out in the order asked, so
    each embedding stays with its object id (the paper's code scrambled rows with num_workers > 0)."""
    ids = [f"{random.Random(i).getrandbits(60):x}" for i in range(200)]  # ids that sort in no useful way
    seen_threads = set()

    def load(start):
        seen_threads.add(threading.get_ident())
        time.sleep(random.random() * 0.01)
        return ids[start:start + 7]

    for workers in (0, 1, 4):
        out = [i for batch in ordered_prefetch(load, range(0, len(ids), 7), workers=workers) for i in batch]
        assert out == ids, workers
    assert len(seen_threads) > 2  # the workers really ran side by side


def test_the_background_reader_passes_errors_on():
    def load(i):
        if i == 3:
            raise OSError("truncated batch 3")
        return i

    with pytest.raises(OSError, match="truncated batch 3"):
        list(ordered_prefetch(load, range(10), workers=3))
