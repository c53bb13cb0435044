"""Pictures of where the attention model looked: a PNG of the glimpse paths on a dozen test
images (each glimpse's squares, in order, numbered), and an animated GIF that adds one glimpse
per frame."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np
import torch

import ram

COLUMNS = 4


@torch.no_grad()
def glimpse_paths(model: ram.RAM, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Locations [T, B, 2] the model visits on images [B, S, S] (evaluation: the Gaussian's mean)."""
    model.eval()
    _, path = model(images, None, torch.Generator().manual_seed(seed), greedy=True)
    model.train()
    return torch.stack(path)


def _figure(images: torch.Tensor, path: torch.Tensor, model: ram.RAM, steps: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    count, size = len(images), images.shape[-1]
    rows = (count + COLUMNS - 1) // COLUMNS
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(2.2 * COLUMNS, 2.2 * rows), squeeze=False)
    colours = plt.cm.plasma(np.linspace(0, 0.85, len(path)))
    boxes = [ram.glimpse_boxes(loc, model.s.size, model.s.scales, size) for loc in path]  # T × [B, k, 4]
    for b, ax in enumerate(axes.flat):
        ax.axis("off")
        if b >= count:
            continue
        ax.imshow(images[b].numpy(), cmap="gray", vmin=0, vmax=1)
        centres = ((path[:steps, b].clamp(-1, 1) + 1) / 2 * size - 0.5).numpy()
        ax.plot(centres[:, 0], centres[:, 1], "-", color="white", linewidth=0.8, alpha=0.7)
        for t in range(steps):
            for x0, y0, x1, y1 in boxes[t][b].tolist():
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor=colours[t], linewidth=1.2))
            ax.text(centres[t, 0], centres[t, 1], str(t + 1), color=colours[t], fontsize=7, ha="center",
                    va="center", fontweight="bold")
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
    fig.tight_layout()
    return fig, plt


def draw_glimpse_paths(model: ram.RAM, images: torch.Tensor, folder: Path) -> List[Path]:
    """Write ``glimpses.png`` (every glimpse) and ``glimpses.gif`` (one more glimpse per frame)
    into ``folder`` for images [B, S, S]; returns their paths."""
    from PIL import Image

    path = glimpse_paths(model, images)
    fig, plt = _figure(images, path, model, len(path))
    png = folder / "glimpses.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    frames = []
    for steps in range(1, len(path) + 1):
        fig, plt = _figure(images, path, model, steps)
        fig.canvas.draw()
        frames.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3]))
        plt.close(fig)
    gif = folder / "glimpses.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:] + frames[-1:] * 2, duration=700, loop=0)
    return [png, gif]
