"""Record the golden values of tests/test_golden.py.

    python tests/golden/make_golden.py   # writes tests/golden/imp_golden.json

Run it only when a change of behaviour is intended (and say so in the commit):
the test compares every later fit with this record, within tolerances that
allow for another CPU's float summation order. One torch thread, like the test
suite.
"""

import json
import os
import re
import sys
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # as tests/conftest.py

import torch  # noqa: E402

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from test_golden import CASES, fingerprint  # noqa: E402


def dumps(record):
    """JSON, one key per line, but lists of numbers on one line."""
    text = json.dumps(record, indent=1, sort_keys=True)
    return re.sub(r"\[[^\[\]{}\"]*\]",
                  lambda m: json.dumps(json.loads(m.group(0)), separators=(", ", ": ")), text)


if __name__ == "__main__":
    out = {name: fingerprint(name) for name in CASES}
    out["_recorded_with"] = {"torch": torch.__version__,
                             "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    path = Path(__file__).with_name("imp_golden.json")
    path.write_text(dumps(out) + "\n")
    print(f"wrote {path} ({len(CASES)} cases)")
