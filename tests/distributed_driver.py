"""Run under torchrun by test_distributed.py: ``torchrun ... distributed_driver.py OUT RUN-FLAGS...``.

In one launch (starting processes costs more than this tiny training): the run trained once straight
through into OUT/whole, then the same run into OUT/resumed, interrupted after its second epoch as Ctrl-C
would (an ``on_epoch_end`` hook, run by rank 0), and run again to resume. Each rank writes its exit codes
to OUT/codes-RANK.json.
"""

import functools
import json
import os
import sys

from rethinkgen.cli import main
from rethinkgen.engine import trainer as train_module


def interrupt_after_second_epoch(run, epoch):
    if epoch >= 2:
        raise KeyboardInterrupt


if __name__ == "__main__":
    out, flags = sys.argv[1], sys.argv[2:]
    codes = {"whole": main(["run", "--runs", f"{out}/whole", *flags])}
    real = train_module.train  # the CLI's `run` calls it: give it the hook on every rank
    train_module.train = functools.partial(real, on_epoch_end=interrupt_after_second_epoch)
    codes["interrupted"] = main(["run", "--runs", f"{out}/resumed", *flags])
    train_module.train = real
    codes["resumed"] = main(["run", "--runs", f"{out}/resumed", *flags])
    with open(f"{out}/codes-{os.environ['RANK']}.json", "w") as handle:
        json.dump(codes, handle)
