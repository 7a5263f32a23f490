"""Write lamina's shipped 8x8 digits as PNG files, one folder per digit, for the image_folder
dataset (needs Pillow: pip install Pillow):

    python examples/make_image_folder.py [--out data/digits_png] [--size 16]
    lamina train examples/configs/images.toml

Each image goes to OUT/<digit>/<index>.png as 8-bit grayscale (the digits' 0..16 scaled to
0..255); --size SIZE upscales it to SIZE x SIZE pixels (bilinear).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import lamina


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the 8x8 digits as OUT/<digit>/<index>.png.")
    parser.add_argument("--out", default="data/digits_png", help="the folder to write (default: data/digits_png)")
    parser.add_argument("--size", type=int, default=None, help="upscale every image to SIZE x SIZE pixels, e.g. 16")
    args = parser.parse_args(argv)
    if args.size is not None and args.size < 1:
        parser.error(f"--size {args.size}: the size must be a whole number >= 1, e.g. --size 16")
    try:
        from PIL import Image
    except ImportError:
        sys.exit("make_image_folder.py needs Pillow: pip install Pillow")
    # every digit, none held out: image_folder makes its own split
    images, digits, _, _ = lamina.dataset("digits", flatten=False, normalize=False, test_split=0.0)
    out = Path(args.out)
    for digit in range(10):
        (out / str(digit)).mkdir(parents=True, exist_ok=True)
    for index, (image, digit) in enumerate(zip(images, digits)):
        picture = Image.fromarray(np.round(image[0] * (255 / 16)).astype(np.uint8))  # (8, 8) uint8: mode "L"
        if args.size is not None:
            picture = picture.resize((args.size, args.size), Image.Resampling.BILINEAR)
        picture.save(out / str(digit) / f"{index}.png")
    side = args.size or 8
    print(f"wrote {len(images)} PNG files of {side}x{side} pixels to {out}/0 ... {out}/9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
