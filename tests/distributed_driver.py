"""Run under torchrun by test_distributed.py: ``torchrun ... distributed_driver.py OUT RUN-FLAGS...``.

In one launch (starting processes costs more than this tiny training): the run trained once straight
through into OUT/whole, then the same run into OUT/resumed, interrupted by rank 0 in its third epoch as
Ctrl-C would, and run again to resume. Each rank writes its exit codes to OUT/codes-RANK.json.
"""

import json
import os
import sys

from rethinkgen import train as train_module
from rethinkgen.cli import main


def interrupt_third_evaluation_on_rank_0(real):
    calls = []

    def evaluate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    return evaluate


if __name__ == "__main__":
    out, flags = sys.argv[1], sys.argv[2:]
    codes = {"whole": main(["run", "--out", f"{out}/whole", *flags])}
    real = train_module.evaluate
    if os.environ["RANK"] == "0":  # only rank 0 evaluates
        train_module.evaluate = interrupt_third_evaluation_on_rank_0(real)
    codes["interrupted"] = main(["run", "--out", f"{out}/resumed", *flags])
    train_module.evaluate = real
    codes["resumed"] = main(["run", "--out", f"{out}/resumed", *flags])
    with open(f"{out}/codes-{os.environ['RANK']}.json", "w") as handle:
        json.dump(codes, handle)
