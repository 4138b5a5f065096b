"""Small matplotlib helpers (Agg backend, files only)."""

from __future__ import annotations

import pathlib
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_learning_curve(history: Sequence[dict], path: str | pathlib.Path, *,
                        title: str = "") -> pathlib.Path:
    """Training loss and validation error per epoch, side by side, as PNG."""
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [r.get("train_loss") for r in history], label="train")
    if all("val_loss" in r for r in history):
        ax_loss.plot(epochs, [r["val_loss"] for r in history], label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_loss.legend()
    for key, label in (("train_error", "train"), ("val_error", "validation")):
        if all(key in r for r in history):
            ax_err.plot(epochs, [100 * r[key] for r in history], label=label)
    ax_err.set(xlabel="epoch", ylabel="error (%)")
    ax_err.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
