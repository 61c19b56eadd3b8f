"""Bad input against train_meta.py and eval_meta.py, as a new user would try it (issue 11):

    python scripts/fault_probe.py [--keep]

Every case runs the real command in a scratch folder (a tiny run is meta-trained there first, for
the cases that need a checkpoint) and is "handled" when it ends as expected:

- "refuse": exit code 2, no traceback, a message that names the problem ("error: ..." in one
  line, or argparse's usage line and error line), and nothing created at the --out it named;
- "run": exit code 0 (unusual but valid input, e.g. an --out with spaces).

Prints one line per case and the count handled / tried. Signals, locks, disk errors and
checkpoint faults need timing or monkeypatching: they are tested in tests/test_hardening.py.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 120  # every case should end in seconds; the "run" cases train a tiny config
TINY = """task: {widths: [4, 4, 4], n_samples: 4}
model: {variant: update_tele, hidden_size: 4}
train: {batch_size: 2, n_steps: 4, unroll: 2, trajectories: 4, val_every: 0, val_problems: 2,
        ckpt_every: 1}
"""


def cases(tiny: str, ck: str, full: str) -> list[tuple[str, str, list[str], str]]:
    """(name, script, arguments, expectation); ``out`` is where each case may write."""
    q = str(REPO / "configs" / "quick.yaml")
    dg = str(REPO / "configs" / "digits_update_tele.yaml")
    ev = ["--num-inits", "2", "--steps", "2", "--no-tune"]
    return [
        ("eval: checkpoint is a folder", "eval", ["--checkpoint", "scratch", "--out", "out"],
         "refuse"),
        ("eval: full checkpoint instead of params", "eval",
         ["--checkpoint", full, "--out", "out", *ev], "refuse"),
        ("eval: empty checkpoint file", "eval", ["--checkpoint", "empty.pt", "--out", "out"],
         "refuse"),
        ("eval: text file as checkpoint", "eval", ["--checkpoint", "text.pt", "--out", "out"],
         "refuse"),
        ("eval: missing checkpoint", "eval", ["--checkpoint", "nope.pt", "--out", "out"],
         "refuse"),
        ("eval: --num-inits 0", "eval", ["--checkpoint", ck, "--num-inits", "0", "--out", "out"],
         "refuse"),
        ("eval: --num-inits -3", "eval",
         ["--checkpoint", ck, "--num-inits", "-3", "--out", "out"], "refuse"),
        ("eval: --steps 0", "eval", ["--checkpoint", ck, "--steps", "0", "--out", "out"],
         "refuse"),
        ("eval: --seed -1", "eval", ["--checkpoint", ck, "--seed", "-1", "--out", "out"],
         "refuse"),
        ("eval: --widths 20,x", "eval", ["--checkpoint", ck, "--widths", "20,x", "--out", "out"],
         "refuse"),
        ("eval: --widths with two entries", "eval",
         ["--checkpoint", ck, "--widths", "4,4", "--out", "out"], "refuse"),
        ("eval: --widths with a zero", "eval",
         ["--checkpoint", ck, "--widths", "4,0,4", "--out", "out"], "refuse"),
        ("eval: --n-samples above the input width", "eval",
         ["--checkpoint", ck, "--n-samples", "50", "--out", "out"], "refuse"),
        ("eval: --unit-span 0.5", "eval",
         ["--checkpoint", ck, "--unit-span", "0.5", "--out", "out"], "refuse"),
        ("eval: --cond nan", "eval", ["--checkpoint", ck, "--cond", "nan", "--out", "out"],
         "refuse"),
        ("eval: --threshold -1", "eval",
         ["--checkpoint", ck, "--threshold", "-1", "--out", "out"], "refuse"),
        ("eval: --threshold nan", "eval",
         ["--checkpoint", ck, "--threshold", "nan", "--out", "out"], "refuse"),
        ("eval: --device tpu", "eval", ["--checkpoint", ck, "--device", "tpu", "--out", "out"],
         "refuse"),
        ("eval: unknown baseline", "eval",
         ["--checkpoint", ck, "--baselines", "gd,sgd", "--out", "out"], "refuse"),
        ("eval: one checkpoint twice", "eval", ["--checkpoint", ck, ck, "--out", "out", *ev],
         "refuse"),
        ("eval: --out is a file", "eval", ["--checkpoint", ck, "--out", "text.pt"], "refuse"),
        ("eval: --out empty", "eval", ["--checkpoint", ck, "--out", ""], "refuse"),
        ("eval: --out under a file", "eval", ["--checkpoint", ck, "--out", "text.pt/sub"],
         "refuse"),
        ("eval: --out with spaces and non-ASCII", "eval",
         ["--checkpoint", ck, "--out", "sp ace/ü", *ev], "run"),
        ("train: --set without =", "train", ["--config", q, "--set", "train.meta_lr",
                                              "--out", "out"], "refuse"),
        ("train: --set unknown key", "train", ["--config", q, "--set", "train.foo=1",
                                                "--out", "out"], "refuse"),
        ("train: --set unparsable value", "train", ["--config", q, "--set", "train.meta_lr=[",
                                                     "--out", "out"], "refuse"),
        ("train: --set meta_lr=.inf", "train", ["--config", q, "--set", "train.meta_lr=.inf",
                                                "--out", "out"], "refuse"),
        ("train: --set widths=abc", "train", ["--config", q, "--set", "task.widths=abc",
                                              "--out", "out"], "refuse"),
        ("train: --set bool=maybe", "train", ["--config", q, "--set",
                                              "model.balance_input=maybe", "--out", "out"],
         "refuse"),
        ("train: --set hidden_size=1.5", "train", ["--config", q, "--set",
                                                   "model.hidden_size=1.5", "--out", "out"],
         "refuse"),
        ("train: --set variant=null", "train", ["--config", q, "--set", "model.variant=null",
                                                "--out", "out"], "refuse"),
        ("train: --set threads=-1", "train", ["--config", q, "--set", "train.threads=-1",
                                              "--out", "out"], "refuse"),
        ("train: batch_size above trajectories", "train",
         ["--config", q, "--set", "train.batch_size=1000", "--out", "out"], "refuse"),
        ("train: balance_skip without balance_input", "train",
         ["--config", q, "--set", "model.balance_skip=true", "--out", "out"], "refuse"),
        ("train: digits with 10-class widths wrong", "train",
         ["--config", dg, "--set", "task.widths=[64, 32, 9]", "--out", "out"], "refuse"),
        ("train: digits subset too large for an exact teleport", "train",
         ["--config", dg, "--set", "task.n_samples=60", "--out", "out"], "refuse"),
        ("train: held-out meta-loss on synthetic data", "train",
         ["--config", q, "--set", "train.meta_loss_on=held_out", "--out", "out"], "refuse"),
        ("train: unknown dataset", "train",
         ["--config", q, "--set", "task.dataset=mnist", "--out", "out"], "refuse"),
        ("train: --seed -5", "train", ["--config", q, "--seed", "-5", "--out", "out"],
         "refuse"),
        ("train: --max-meta-steps 0", "train", ["--config", q, "--max-meta-steps", "0",
                                                "--out", "out"], "refuse"),
        ("train: --max-meta-steps -1", "train", ["--config", q, "--max-meta-steps", "-1",
                                                 "--out", "out"], "refuse"),
        ("train: missing config", "train", ["--config", "nope.yaml", "--out", "out"], "refuse"),
        ("train: config is a folder", "train", ["--config", "scratch", "--out", "out"],
         "refuse"),
        ("train: config is a YAML list", "train", ["--config", "list.yaml", "--out", "out"],
         "refuse"),
        ("train: config is not valid YAML", "train", ["--config", "bad.yaml", "--out", "out"],
         "refuse"),
        ("train: config is binary", "train", ["--config", "binary.yaml", "--out", "out"],
         "refuse"),
        ("train: unknown config section", "train", ["--config", "section.yaml", "--out", "out"],
         "refuse"),
        ("train: --device cuda without CUDA", "train", ["--config", q, "--device", "cuda",
                                                        "--out", "out"], "refuse"),
        ("train: --out empty", "train", ["--config", q, "--out", ""], "refuse"),
        ("train: --out is a file", "train", ["--config", q, "--out", "text.pt"], "refuse"),
        ("train: --out under /proc", "train", ["--config", q, "--out", "/proc/out"], "refuse"),
        ("train: --resume without a run folder", "train",
         ["--config", q, "--resume", "--out", "out"], "refuse"),
        ("train: fresh run into a finished run", "train",
         ["--config", tiny, "--out", "scratch/run"], "refuse"),
        ("train: --resume with another config", "train",
         ["--config", tiny, "--set", "train.unroll=4", "--resume", "--out", "scratch/run"],
         "refuse"),
        ("train: --out with spaces and non-ASCII", "train",
         ["--config", tiny, "--out", "sp ace/ü run", "--no-progress"], "run"),
    ]


def judge(expect: str, proc: subprocess.CompletedProcess, out: Path, existed: bool) -> str:
    """'' when the case behaved as expected, else what went wrong."""
    err = proc.stderr.strip()
    if expect == "run":
        return "" if proc.returncode == 0 else f"exit {proc.returncode}: {err[-200:]}"
    if "Traceback" in err:
        return "traceback"
    if proc.returncode != 2:
        return f"exit {proc.returncode}"
    lines = err.splitlines()
    usage = len(lines) >= 2 and lines[-1].startswith(("train_meta.py: error:",
                                                      "eval_meta.py: error:"))
    if not (usage or (len(lines) == 1 and lines[0].startswith("error:"))):
        return f"not a one-line error: {err[:200]}"
    if out.exists() and not existed:
        return f"created {out}"
    return ""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="fault_probe_"))
    try:
        scratch = work / "scratch"
        scratch.mkdir()
        (work / "tiny.yaml").write_text(TINY)
        (work / "empty.pt").write_bytes(b"")
        (work / "text.pt").write_text("not a checkpoint\n")
        (work / "list.yaml").write_text("- 1\n")
        (work / "bad.yaml").write_text("train: [\n")
        (work / "binary.yaml").write_bytes(bytes(range(256)) * 4)
        (work / "section.yaml").write_text("optim:\n  lr: 1\n")
        subprocess.run([sys.executable, str(REPO / "train_meta.py"), "--config", "tiny.yaml",
                        "--out", "scratch/run", "--no-progress"], cwd=work, check=True,
                       capture_output=True)
        ck = "scratch/run/params.pt"
        full = str(sorted((scratch / "run" / "checkpoints").glob("full_*.pt"))[-1])
        handled = 0
        all_cases = cases("tiny.yaml", ck, full)
        for name, script, arguments, expect in all_cases:
            i = arguments.index("--out") + 1 if "--out" in arguments else None
            out = work / arguments[i] if i is not None and arguments[i] else work / "runs"
            existed = out.exists()
            try:
                proc = subprocess.run([sys.executable, str(REPO / f"{script}_meta.py"),
                                       *arguments], cwd=work, capture_output=True, text=True,
                                      timeout=TIMEOUT_S)
                problem = judge(expect, proc, out, existed)
            except subprocess.TimeoutExpired:
                problem = f"still running after {TIMEOUT_S} s (accepted and started work)"
            handled += not problem
            print(f"{'ok  ' if not problem else 'FAIL'} {name}" + (f": {problem}"
                                                                   if problem else ""))
        print(f"{handled} / {len(all_cases)} cases handled")
        return 0 if handled == len(all_cases) else 1
    finally:
        if args.keep:
            print(f"scratch folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
