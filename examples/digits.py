"""Train one MLP on real digits with SGD, Adam and the shipped learned optimizers, in an
ordinary PyTorch loop.

    python examples/digits.py [--seeds 32] [--steps 100] [--out runs/digits_example]

Every seed draws a fresh initialization (nn.Linear's default) and 40 training images from the
test pool of scikit-learn's digits, which no learned optimizer saw in meta-training (the
split of metateleport.tasks.DigitsTaskFamily), and trains a 64-32-10 LeakyReLU MLP with biases
full-batch for --steps steps with each optimizer, on the squared loss of one-hot labels (the
loss the learned optimizers were meta-trained on; SGD and Adam minimize the same loss). The
learned optimizers are torch.optim optimizers (metateleport.LearnedTorchOptimizer); the
teleporting ones (meta-trained on the training loss, or on the loss on held-out images) call
``opt.teleport(model, x, y)`` after every step, which is exact on the training batch
and changes the outputs on every other image. Held-out accuracy is measured on 361 images that
no problem trains on. Writes TensorBoard curves (train loss, held-out accuracy; mean over
seeds), a PNG, and prints a table: mean over seeds with a 95% bootstrap interval.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from metateleport import LearnedTorchOptimizer
from metateleport.stats import bootstrap_ci
from metateleport.tasks import digits_pools

REPO = Path(__file__).resolve().parents[1]

# SGD's and Adam's step sizes: those eval_meta.py's step-size search chose on validation
# problems of the digits family (python eval_meta.py --checkpoint checkpoints/digits_*.pt).
SGD_LR, ADAM_LR = 0.01, 0.03


def make_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 32), nn.LeakyReLU(0.1), nn.Linear(32, 10))


def optimizers(args) -> dict:
    """name -> (make the optimizer from the parameters, teleport after every step)."""
    return {
        "SGD": (lambda ps: torch.optim.SGD(ps, lr=SGD_LR), False),
        "Adam": (lambda ps: torch.optim.Adam(ps, lr=ADAM_LR), False),
        "LSTM(update)": (lambda ps: LearnedTorchOptimizer(ps, checkpoint=args.update), False),
        "LSTM(update,tele)": (
            lambda ps: LearnedTorchOptimizer(ps, checkpoint=args.update_tele), True),
        "LSTM(update,tele), held-out meta-loss": (
            lambda ps: LearnedTorchOptimizer(ps, checkpoint=args.update_tele_held_out), True),
    }


def train(make_opt, teleport: bool, seed: int, data, steps: int):
    """One run: (train loss per step (steps + 1,), held-out accuracy per step (steps + 1,))."""
    x, y, x_test, y_test = data
    model = make_model(seed)
    opt = make_opt(model.parameters())
    target = nn.functional.one_hot(y, 10).float()

    def held_out_accuracy() -> float:
        with torch.no_grad():
            return (model(x_test).argmax(dim=1) == y_test).float().mean().item()

    losses, accuracies = [], []
    for _ in range(steps + 1):
        opt.zero_grad()
        loss = 0.5 * (model(x) - target).pow(2).sum()
        losses.append(loss.item())
        accuracies.append(held_out_accuracy())
        if len(losses) > steps:  # the loss and accuracy after the last step
            break
        loss.backward()
        opt.step()
        if teleport:
            opt.teleport(model, x, y)
    return np.array(losses), np.array(accuracies)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=32, help="initializations and subsets")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--images", type=int, default=40, help="training images per seed")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "digits_example")
    parser.add_argument("--update", type=Path, default=REPO / "checkpoints" / "digits_update.pt")
    parser.add_argument("--update-tele", type=Path,
                        default=REPO / "checkpoints" / "digits_update_tele.pt")
    parser.add_argument("--update-tele-held-out", type=Path,
                        default=REPO / "checkpoints" / "digits_update_tele_held_out.pt",
                        help="LSTM(update,tele) meta-trained on the held-out loss")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or not 1 <= args.images <= 65:
        parser.error("need --seeds >= 1, --steps >= 1 and 1 <= --images <= 65 (the teleport "
                     "is exact on at most 64 + 1 images: [x; 1] must have full column rank)")
    torch.set_num_threads(1)
    images, labels, pools = digits_pools()
    x_test = torch.tensor(images[pools["held_out"]], dtype=torch.float32)
    y_test = torch.tensor(labels[pools["held_out"]])
    opts = optimizers(args)
    curves = {name: ([], []) for name in opts}
    with tqdm(total=args.seeds * len(opts), desc="runs", unit="run") as bar:
        for seed in range(args.seeds):
            idx = np.random.default_rng(seed).choice(pools["test"], args.images, replace=False)
            data = (torch.tensor(images[idx], dtype=torch.float32), torch.tensor(labels[idx]),
                    x_test, y_test)
            for name, (make_opt, teleport) in opts.items():
                loss, accuracy = train(make_opt, teleport, seed, data, args.steps)
                curves[name][0].append(loss)
                curves[name][1].append(accuracy)
                bar.set_postfix_str(f"{name} seed {seed}: held-out accuracy {accuracy[-1]:.3f}")
                bar.update()

    args.out.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(10, 4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    print(f"\n{args.seeds} seeds, {args.images} training images each, {args.steps} steps; "
          "mean over seeds [95% bootstrap interval]\n")
    print("| optimizer | train loss | held-out accuracy |\n|---|---|---|")
    for name, (loss, accuracy) in curves.items():
        loss, accuracy = np.stack(loss), np.stack(accuracy)
        run_name = "".join(c if c.isalnum() else "_" for c in name)
        with SummaryWriter(args.out / "tb" / run_name) as tb:
            for t in range(args.steps + 1):
                tb.add_scalar("train_loss", loss[:, t].mean(), t)
                tb.add_scalar("held_out_accuracy", accuracy[:, t].mean(), t)
        steps = np.arange(args.steps + 1)
        ax_loss.plot(steps, np.median(loss, axis=0), label=name)
        ax_acc.plot(steps, accuracy.mean(axis=0), label=name)
        ci_loss = bootstrap_ci(torch.tensor(loss[:, -1]), "mean")
        ci_acc = bootstrap_ci(torch.tensor(accuracy[:, -1]), "mean")
        print(f"| {name} | {ci_loss[0]:.3g} [{ci_loss[1]:.3g}, {ci_loss[2]:.3g}] | "
              f"{ci_acc[0]:.3f} [{ci_acc[1]:.3f}, {ci_acc[2]:.3f}] |")
    ax_loss.set(yscale="log", xlabel="step", ylabel="train loss (median over seeds)")
    ax_acc.set(xlabel="step", ylabel="held-out accuracy (mean over seeds)")
    ax_acc.legend()
    fig.tight_layout()
    png = args.out / "digits.png"
    fig.savefig(png, dpi=120)
    print(f"\nfigure: {png}\ncurves: tensorboard --logdir {args.out / 'tb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
